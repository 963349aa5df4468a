using Popo.Engine.Runtime;

namespace Popo.Engine.Model;

/// <summary>A config.json that cannot describe a supported model; the message names the file and field.</summary>
internal sealed class ModelConfigException(string message) : Exception(message);
