using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Engine.Training;

/// <summary>Packs ragged token sequences into padded tensors.</summary>
internal static class SequenceBatch
{
    /// <summary>
    /// Right-padded [B,T] ids of prompt + target, with a [B,T] attention mask and a [B,T] loss mask that
    /// is 1 on the target tokens only (the prompt is context, not a label).
    /// </summary>
    public static (Tensor Ids, Tensor Attention, Tensor LossMask) PromptTarget(
        IReadOnlyList<(int[] Prompt, int[] Target)> rows, int padId, Device device)
    {
        int width = rows.Max(r => r.Prompt.Length + r.Target.Length);
        var ids = new long[rows.Count * width];
        var attention = new long[rows.Count * width];
        var loss = new float[rows.Count * width];
        Array.Fill(ids, padId);
        for (int i = 0; i < rows.Count; i++)
        {
            var (prompt, target) = rows[i];
            for (int t = 0; t < prompt.Length; t++) { ids[i * width + t] = prompt[t]; attention[i * width + t] = 1; }
            for (int t = 0; t < target.Length; t++)
            {
                int at = i * width + prompt.Length + t;
                ids[at] = target[t]; attention[at] = 1; loss[at] = 1;
            }
        }
        long[] shape = [rows.Count, width];
        return (tensor(ids, shape, device: device), tensor(attention, shape, device: device), tensor(loss, shape, device: device));
    }
}
