using Popo.Kernels;
using Popo.Engine.Model;
using Popo.Engine.Rollout;
using Popo.Engine.Runtime;
using Popo.Engine.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Bench;

/// <summary>
/// Rollouts on a long-tailed length distribution: G rollouts of each of a few prompts, every row ended at a
/// drawn length (per-row limits stand in for the stop token a random model rarely emits), generated with the
/// sampler's shared prompt prefill and finished-row compaction off ("before") and on ("after") in one run, with
/// the check that both give the same tokens, masks and log-probs. Then the decode step at batch 1 in bf16
/// against its weight-read bound.
/// </summary>
internal static class RolloutBench
{
    public sealed record Setup(BenchModels.Size[] Sizes, int Prompts, int Group, int PromptLength, int Cap, int Rounds, int DecodeSteps);

    /// <summary>The Qwen2.5-0.5B layout (random weights), <paramref name="layers"/> decoder layers deep.</summary>
    public static BenchModels.Size Qwen05B(int layers) => new($"qwen2.5-0.5b-layout-{layers}L", new ModelConfig
    {
        VocabSize = 151936, HiddenSize = 896, IntermediateSize = 4864, NumHiddenLayers = layers, NumAttentionHeads = 14,
        NumKeyValueHeads = 2, TieWordEmbeddings = true, RopeTheta = 1_000_000, RmsNormEps = 1e-6, MaxPositionEmbeddings = 32768,
    });

    public static Setup Full(int layers) => new([BenchModels.Small, Qwen05B(layers)], 4, 8, 128, 512, 1, 32);
    public static readonly Setup Quick = new([BenchModels.Tiny], 2, 4, 16, 32, 1, 8);

    /// <summary>
    /// Completion lengths: log-normal with median cap/8 and sigma 1, rounded up and capped: most rows short, a
    /// few at the cap (the shape of RLVR completion lengths). Fixed seed: before and after see the same lengths.
    /// </summary>
    public static int[] Lengths(int rows, int cap, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, rows).Select(_ =>
        {
            var normal = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
            return (int)Math.Clamp(Math.Ceiling(cap / 8.0 * Math.Exp(normal)), 1, cap);
        }).ToArray();
    }

    public static IEnumerable<BenchSection> Run(Setup setup, PeakResult peak, string nativeHeap)
    {
        var s = new BenchSection("rollout", $"Rollouts: {setup.Prompts} prompts x G = {setup.Group}, prompts of {setup.PromptLength} tokens, long-tailed lengths capped at {setup.Cap}; before = shared prefill and compaction off, after = on");
        NativeHeap.Apply(NativeHeap.Choose(setup.Sizes.Max(z => MemoryEstimate.ParameterCount(z.Config)), nativeHeap));   // as the trainer does for these models
        var rows = setup.Prompts * setup.Group;
        var lengths = Lengths(rows, setup.Cap, seed: 18);
        s.Facts["rows"] = rows;
        s.Facts["tokens"] = lengths.Sum();
        s.Facts["mean_length"] = lengths.Average();
        s.Facts["max_length"] = lengths.Max();
        s.Facts["row_steps_without_compaction"] = (long)rows * lengths.Max();
        foreach (var size in setup.Sizes) s.Rows.Add(Compare(size, setup, lengths));
        s.Notes.Add("lengths: ceil(cap/8 x exp(N(0,1))) capped, seed 18; rows end at them through SamplerOptions.MaxNewTokensPerRow (no stop token); T = 1, seed 1;");
        s.Notes.Add("identical = tokens, completion masks and sequences equal; max_dlogp = largest |log-prob difference| (matmuls over different batch sizes may round differently); best of the rounds;");
        yield return s;
        yield return DecodeBatchOne(setup.Sizes[^1], setup, peak);
        yield return FewRowHead(setup.Sizes[^1], peak);
    }

    private static Dictionary<string, object> Compare(BenchModels.Size size, Setup setup, int[] lengths)
    {
        torch.manual_seed(0);
        using var model = new Qwen2ForCausalLM(size.Config, torch.CPU, ScalarType.Float32);
        model.eval();
        var random = new Random(7);
        var prompts = Enumerable.Range(0, setup.Prompts)
            .Select(_ => Enumerable.Range(0, setup.PromptLength).Select(_ => random.Next(size.Config.VocabSize)).ToArray())
            .SelectMany(p => Enumerable.Repeat(p, setup.Group)).ToList();
        var options = new SamplerOptions { MaxNewTokens = setup.Cap, MaxNewTokensPerRow = lengths, Seed = 1 };
        var before = options with { SharePromptPrefill = false, CompactFinishedRows = false };
        Sampler.Generate(model, prompts.Take(2).ToList(), options with { MaxNewTokens = 2, MaxNewTokensPerRow = null }).Dispose(); // warm-up
        Span slow = Span.Infinite, fast = Span.Infinite;
        GenerationBatch? a = null, b = null;
        for (var round = 0; round < setup.Rounds; round++)
        {
            a?.Dispose();
            b?.Dispose();
            ResidentMemory.ResetPeak();
            slow = Span.Min(slow, BenchClock.Time(() => a = Sampler.Generate(model, prompts, before)));
            fast = Span.Min(fast, BenchClock.Time(() => b = Sampler.Generate(model, prompts, options)));
        }
        using var plain = a!;
        using var shared = b!;
        var identical = Same(plain.CompletionIds, shared.CompletionIds) && Same(plain.CompletionMask, shared.CompletionMask) && Same(plain.InputIds, shared.InputIds);
        using var difference = (plain.OldLogProbs - shared.OldLogProbs).abs().max();
        var tokens = (double)lengths.Sum();
        return new()
        {
            ["model"] = size.Name,
            ["params_M"] = model.parameters().Sum(p => p.numel()) / 1e6,
            ["before_s"] = slow.Wall,
            ["after_s"] = fast.Wall,
            ["before_tok_s"] = tokens / slow.Wall,
            ["after_tok_s"] = tokens / fast.Wall,
            ["speedup"] = slow.Wall / fast.Wall,
            ["speedup_cpu"] = slow.Cpu / fast.Cpu,
            ["before_cpu_s"] = slow.Cpu,
            ["after_cpu_s"] = fast.Cpu,
            ["identical"] = identical ? 1 : 0,
            ["max_dlogp"] = difference.item<float>(),
        };
    }

    /// <summary>CPU seconds of one token's matmuls in bf16: all layers' projections and MLP, each [1,in] x [out,in]^T by the product the model uses for it (<see cref="FewRowProduct"/> or libtorch's), and the model's head on one row (its own path: <see cref="Qwen2ForCausalLM.LogitsOf"/>).</summary>
    private static (double Layers, double Head) OneRowMatmuls(Qwen2ForCausalLM model)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var c = model.Config;
        double Time(long output, long input)
        {
            var x = torch.randn(1, input).to(ScalarType.BFloat16);
            var w = torch.randn(output, input).to(ScalarType.BFloat16);
            Func<Tensor> product = FewRowProduct.Applies(1, output, input, ScalarType.BFloat16, torch.CPU)   // the model's path (Projection)
                ? () => FewRowProduct.Multiply(x, w) : () => nn.functional.linear(x, w);
            for (var i = 0; i < 20; i++) product().Dispose();
            return BenchClock.Best(20, () => product().Dispose()).Cpu;
        }
        long d = c.HiddenSize, kv = c.NumKeyValueHeads * c.HeadDim, q = c.NumAttentionHeads * c.HeadDim;
        var layer = Time(q, d) + 2 * Time(kv, d) + Time(d, q) + 2 * Time(c.IntermediateSize, d) + Time(d, c.IntermediateSize);
        var h = torch.randn(1, d).to(model.HiddenDtype);
        var head = BenchClock.Best(20, () => model.LogitsOf(h).Dispose()).Cpu;
        return (c.NumHiddenLayers * layer, head);
    }

    private static bool Same(Tensor a, Tensor b)
    {
        using var equal = a.eq(b);
        return a.shape.SequenceEqual(b.shape) && equal.all().item<bool>();
    }

    /// <summary>
    /// One sampled decode step at batch 1 in bf16 weights against the bytes it must read (every matmul weight
    /// once in bf16, plus the cached keys and values) over the copy rate of this run: the sampler's time for
    /// N new tokens minus that for 1, over N - 1 steps.
    /// </summary>
    private static BenchSection DecodeBatchOne(BenchModels.Size size, Setup setup, PeakResult peak)
    {
        var s = new BenchSection("decode_b1_bf16", $"Decode at batch 1 in bf16 ({size.Name}, prompt {setup.PromptLength}, {setup.DecodeSteps} steps)");
        torch.manual_seed(0);
        using var model = new Qwen2ForCausalLM(size.Config, torch.CPU, ScalarType.BFloat16);
        model.eval();
        var random = new Random(3);
        var prompt = new[] { Enumerable.Range(0, setup.PromptLength).Select(_ => random.Next(size.Config.VocabSize)).ToArray() };
        var options = new SamplerOptions { MaxNewTokens = setup.DecodeSteps, Seed = 1 };
        Sampler.Generate(model, prompt, options with { MaxNewTokens = 2 }).Dispose(); // warm-up
        Span one = Span.Infinite, all = Span.Infinite;
        for (var round = 0; round < 3; round++)
        {
            one = Span.Min(one, BenchClock.Time(() => Sampler.Generate(model, prompt, options with { MaxNewTokens = 1 }).Dispose()));
            all = Span.Min(all, BenchClock.Time(() => Sampler.Generate(model, prompt, options).Dispose()));
        }
        var step = (all - one).Wall / (setup.DecodeSteps - 1);
        var stepCpu = (all - one).Cpu / (setup.DecodeSteps - 1);
        var context = setup.PromptLength + setup.DecodeSteps / 2.0;
        var bytes = BenchModels.DecodeBytesPerStep(size.Config, 1, context, bytesPerElement: 2);
        var bound = bytes / peak.CopyBytesPerSecond;
        s.Facts["weights_read_per_step_MiB"] = bytes / (1024.0 * 1024);
        var (layerMatmuls, head) = OneRowMatmuls(model);
        s.Rows.Add(new()
        {
            ["model"] = size.Name,
            ["ms_per_step"] = 1000 * step,
            ["bound_ms"] = 1000 * bound,
            ["x_of_bound"] = step / bound,
            ["ms_per_step_cpu"] = 1000 * stepCpu,
            ["x_of_bound_cpu"] = stepCpu / (bytes / peak.CopyBytesPerCpuSecond),
            ["tok_s"] = 1 / step,
            ["layer_matmuls_ms_cpu"] = 1000 * layerMatmuls,
            ["head_ms_cpu"] = 1000 * head,
            ["rest_ms_cpu"] = 1000 * (stepCpu - layerMatmuls - head),
        });
        s.Notes.Add("layer_matmuls = the step's one-row bf16 matmuls timed alone on random weights of the same shapes, each by the product the model uses for it, head = the model's own head on one row (best of 20, CPU); rest = everything else in the step (attention, norms, RoPE, cache writes, sampling, per-op overhead).");
        s.Notes.Add("bound = 2 bytes x (matmul weights + mean context x 2 x layers x kv heads x head dim) / the copy rate measured in this run; x_of_bound 1 = at the bound; _cpu: per CPU-second, both.");
        return s;
    }

    /// <summary>
    /// The head's product at a decode step's row counts, libtorch's against <see cref="FewRowProduct"/>, for float32
    /// and bf16 weights of the model's head shape: what the sampler gains where the kernel applies, and why it stops
    /// where it does (<see cref="FewRowProduct.MaxRows"/>).
    /// </summary>
    private static BenchSection FewRowHead(BenchModels.Size size, PeakResult peak)
    {
        var c = size.Config;
        var s = new BenchSection("few_row_head", $"The head's product for a few rows ([{c.VocabSize}, {c.HiddenSize}] weight, no graph): libtorch against the few-row kernel");
        if (!System.Runtime.Intrinsics.X86.Avx512F.IsSupported)
        {
            s.Notes.Add("no AVX-512 here: the kernel does not run, every product is libtorch's");
            return s;
        }
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        torch.manual_seed(0);
        var master = torch.randn(c.VocabSize, c.HiddenSize);
        foreach (var weight in new[] { master, master.to(ScalarType.BFloat16) })
            foreach (var rows in new[] { 1, 2, 4, 8, 16, 32 })
            {
                var h = torch.randn(rows, c.HiddenSize);
                var cast = h.to(weight.dtype);
                Action libtorch = () => nn.functional.linear(cast, weight).Dispose();
                Action kernel = () => FewRowProduct.Multiply(h, weight).Dispose();
                for (var i = 0; i < 20; i++) { libtorch(); kernel(); }
                Thread.Sleep(200);   // lets the JIT install the kernel's optimised code before the timing
                var a = BenchClock.Best(10, libtorch).Wall;
                var b = BenchClock.Best(10, kernel).Wall;
                var bytes = (double)weight.numel() * weight.element_size();
                s.Rows.Add(new()
                {
                    ["weight"] = weight.dtype == ScalarType.BFloat16 ? "bf16" : "float32",
                    ["rows"] = rows,
                    ["libtorch_ms"] = 1000 * a,
                    ["kernel_ms"] = 1000 * b,
                    ["speedup"] = a / b,
                    ["kernel_x_of_bound"] = b / (bytes / peak.CopyBytesPerSecond),
                    ["used"] = FewRowProduct.Applies(rows, c.VocabSize, c.HiddenSize, weight.dtype, torch.CPU) ? "kernel" : "libtorch",
                });
            }
        s.Notes.Add("best of 10 after 20 warm-up calls, wall; kernel_x_of_bound = kernel time over the weight's bytes at this run's copy rate; used = which product the model takes at that row count (FewRowProduct.MaxRows).");
        return s;
    }
}
