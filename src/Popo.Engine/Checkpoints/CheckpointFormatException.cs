namespace Popo.Engine.Checkpoints;

/// <summary>A checkpoint file that cannot be read as the expected model; the message names the file and tensor.</summary>
internal sealed class CheckpointFormatException(string message) : Exception(message);
