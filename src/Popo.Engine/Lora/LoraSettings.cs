using System.Globalization;
using Popo.Engine.Model;
using Popo.Engine.Runtime;

namespace Popo.Engine.Lora;

/// <summary>
/// A LoRA configuration with PEFT's names (LoraConfig): rank r, lora_alpha, lora_dropout, target_modules,
/// use_rslora. The update of a target linear is W x + s B A dropout(x) with s = alpha / r, or alpha / sqrt(r)
/// under rsLoRA (Kalajdzievski 2023; PEFT and vLLM scale the same way).
/// </summary>
internal sealed record LoraSettings(int Rank, double Alpha, double Dropout, IReadOnlyList<string> Targets, bool UseRsLora)
{
    /// <summary>Every linear layer of a Qwen2 decoder in layer order; PEFT's `all-linear` means these (the head is excluded).</summary>
    public static readonly IReadOnlyList<string> AllLinear = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    /// <summary>The scaling s of B A.</summary>
    public double Scale => UseRsLora ? Alpha / Math.Sqrt(Rank) : Alpha / Rank;

    /// <summary>
    /// `lora_target_modules`: `all-linear` or a comma list of module names, returned in layer order without
    /// duplicates. An unknown or empty name is a <see cref="ConfigException"/> naming <paramref name="source"/>.
    /// </summary>
    public static IReadOnlyList<string> ParseTargets(string text, string source)
    {
        if (text.Trim() == "all-linear") return AllLinear;
        var names = text.Split(',').Select(n => n.Trim()).ToList();
        if (names.Any(n => n.Length == 0))
            throw new ConfigException($"{source}: expected `all-linear` or a comma list of {string.Join(", ", AllLinear)}, got '{text}'");
        var unknown = names.Where(n => !AllLinear.Contains(n)).Distinct().ToList();
        if (unknown.Count > 0)
            throw new ConfigException($"{source}: unknown module{(unknown.Count > 1 ? "s" : "")} {string.Join(", ", unknown.Select(n => $"'{n}'"))}; " +
                                      $"a Qwen2 decoder's linear layers are {string.Join(", ", AllLinear)} (or `all-linear`)");
        return AllLinear.Where(names.Contains).ToList();
    }

    /// <summary>`lora_target_modules` as the key writes it: `all-linear` when every linear is targeted.</summary>
    public string TargetsKey => KeyOf(Targets);

    /// <summary>The canonical `lora_target_modules` value of a parsed target list.</summary>
    public static string KeyOf(IReadOnlyList<string> targets) => targets.Count == AllLinear.Count ? "all-linear" : string.Join(",", targets);

    /// <summary>(in, out) features of a target linear in a model of this shape.</summary>
    public static (long In, long Out) Shape(ModelConfig m, string target)
    {
        long d = m.HiddenSize, q = (long)m.NumAttentionHeads * m.HeadDim, kv = (long)m.NumKeyValueHeads * m.HeadDim, i = m.IntermediateSize;
        return target switch
        {
            "q_proj" => (d, q),
            "k_proj" or "v_proj" => (d, kv),
            "o_proj" => (q, d),
            "gate_proj" or "up_proj" => (d, i),
            "down_proj" => (i, d),
            _ => throw new ArgumentException($"'{target}' is not a Qwen2 linear layer"),
        };
    }

    /// <summary>The module path of a target linear in decoder layer <paramref name="layer"/> ("model.layers.0.self_attn.q_proj").</summary>
    public static string ModulePath(int layer, string target) =>
        $"model.layers.{layer}.{(target is "q_proj" or "k_proj" or "v_proj" or "o_proj" ? "self_attn" : "mlp")}.{target}";

    /// <summary>Adapter parameters over the whole model: r (in + out) per target per layer.</summary>
    public long ParameterCount(ModelConfig m) =>
        m.NumHiddenLayers * Targets.Sum(t => { var (i, o) = Shape(m, t); return Rank * (i + o); });

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"LoRA r = {Rank}, alpha = {Alpha}, s = {Scale:G4}, dropout = {Dropout}, targets = {TargetsKey}{(UseRsLora ? ", rsLoRA" : "")}");
}
