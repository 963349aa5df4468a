using Popo.Engine.Policy;
using Popo.Engine.Model;
using Popo.Engine.Objectives;
using Popo.Engine.Runtime;
using Popo.Engine.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Bench;

/// <summary>
/// Model FLOPs utilisation of one training update: forward over B x T tokens, the mean next-token NLL, backward,
/// grad-norm clip and an AdamW step, as the trainer does per micro-batch. MFU = (6 x matmul weights x tokens +
/// causal attention FLOPs) / step time / the peak matmul rate measured in the same run.
/// </summary>
internal static class UpdateBench
{
    public sealed record Case(BenchModels.Size Size, int Batch, int SequenceLength);

    public static readonly Case[] Full =
    [
        new(BenchModels.Small, 32, 128),
        new(BenchModels.Medium, 16, 128),
        new(BenchModels.Large, 8, 128),
    ];

    public static readonly Case[] Quick = [new(BenchModels.Tiny, 8, 32), new(BenchModels.Small, 4, 32), new(BenchModels.Small, 8, 32)];

    /// <param name="rows">Substrings of "size precision" selecting rows (null = all).</param>
    /// <param name="withPeer">Run the PyTorch peer where it is installed (not under --quick).</param>
    public static BenchSection Run(IEnumerable<Case> cases, IReadOnlyCollection<string>? rows, PeakResult peak, int rounds, bool withPeer = true)
    {
        var skipBf16 = false;
        bool Wanted(Case c, bool bf16) => !(bf16 && skipBf16) && (rows is null || rows.Any(r => $"{c.Size.Name} {(bf16 ? "bf16" : "float32")}".Contains(r, StringComparison.OrdinalIgnoreCase)));
        var s = new BenchSection("update", "Update: forward + backward + AdamW, model FLOPs utilisation, against the PyTorch-eager peer (float32; bf16 under autocast)");
        var threads = torch.get_num_threads();
        var peerMissing = PeerProbe.Unavailable();
        // The bf16 peak at the size a second affords: on a CPU without native bf16 one 2048^3 product takes a minute.
        var bf16Size = MatmulRate.AffordableSize(ScalarType.BFloat16, peak.MatmulSize, 1.0);
        var bf16Peak = MatmulRate.Gflops(bf16Size, ScalarType.BFloat16, rounds: 10);
        s.Facts["matmul_gflops_bf16"] = bf16Peak;
        if (bf16Size < peak.MatmulSize) s.Facts["matmul_n_bf16"] = bf16Size;
        var explicitBf16 = rows?.Any(r => r.Contains("bf16", StringComparison.OrdinalIgnoreCase)) == true;
        if (bf16Peak < peak.GflopsWall / 20 && !explicitBf16)
        {
            skipBf16 = true;
            s.Notes.Add($"bf16 rows skipped: this CPU multiplies bfloat16 at {bf16Peak:G3} GFLOP/s against {peak.GflopsWall:G3} for float32 (no native bf16 GEMM); --rows bf16 runs them anyway");
        }
        if (peerMissing is null && !withPeer) peerMissing = "--quick (the peer's python is not a dependency of the tests)";
        if (peerMissing is null)
        {
            var (chosen, candidates) = PeerProbe.OpenBlasCore(threads);
            s.Facts["peer_openblas_core"] = chosen ?? "OpenBLAS's own choice (OPENBLAS_CORETYPE unset)";
            s.Facts["peer_openblas_candidates"] = string.Join("; ", candidates.Select(k =>
                FormattableString.Invariant($"{k.Name} -> {k.Loaded}: rel err {k.RelErr:G2}, {k.Gflops:F0} GFLOP/s wall, {k.GflopsCpu:F0} per CPU-s{(k.Correct ? "" : " (wrong)")}")));
            if (!candidates.Any(k => k.Correct)) s.Notes.Add($"no OpenBLAS candidate passed the float64 check (tolerance {PeerProbe.Candidate.Tolerance:G1}); the peer runs with OpenBLAS's own choice");
        }
        foreach (var c in cases.Where(c => Wanted(c, false) || Wanted(c, true)))
        {
            foreach (var bf16 in new[] { false, true }.Where(b => Wanted(c, b)))
            {
                var (peerStep, peerVersion) = peerMissing is null ? PeerProbe.UpdateStep(c.Size.Config, c.Batch, c.SequenceLength, rounds, threads, bf16) : (new Span(double.NaN, double.NaN), "");
                if (peerMissing is null && double.IsNaN(peerStep.Wall)) s.Notes.Add($"peer {c.Size.Name} {(bf16 ? "bf16" : "float32")}: {peerVersion}");
                else if (peerMissing is null) s.Facts["peer"] = $"PyTorch {peerVersion} eager (float32 rows: float32; bf16 rows: torch.autocast(\"cpu\", dtype=torch.bfloat16)), OPENBLAS_NUM_THREADS = {threads}, torch threads {threads}, OPENBLAS_L2_SIZE unset, best of {PeerProbe.Processes} processes";
                s.Rows.Add(Row(c, peak, bf16 ? bf16Peak : peak.GflopsWall, rounds, bf16, peerStep));
            }
        }
        if (peerMissing is not null) s.Notes.Add($"peer skipped: {peerMissing}");
        s.Notes.Add("FLOPs per token = 6 x matmul weights + 12 x layers x hidden x mean causal context ((T+1)/2); mfu_wall uses the matmul peak of the row's precision; mfu_cpu uses GFLOP per CPU-second against the float32 peak.");
        s.Notes.Add("gemm_floor_s: the step's matrix products alone at their shapes, in the row's dtype and threads (GemmFloor.cs); gemm_share = gemm_floor_s / step_s, the rest is everything else the step does; max_vs_peer = the peer's step / gemm_floor_s, the largest engine / peer ratio any step with these product kernels could reach (the target is out of reach where it is below 1.3).");
        s.Notes.Add("forward_s (the model and the loss), backward_s and optimizer_s (grad-norm clip, AdamW, zeroing the gradients, the collection the trainer also runs after each step) split the fastest round's wall time; against gemm_floor_s they place the time outside the products (a third of the floor is the forward's products, two thirds the backward's).");
        s.Notes.Add("bf16 rows: bf16 matmuls, float32 master weights, gradients, AdamW state and log-softmax (bf16 = true); vs_peer = tok_s / the peer's tok_s in the row's precision (bf16: PyTorch's autocast) at the same thread count (_cpu: per process CPU-second on both sides, which discounts other processes' time slices).");
        return s;
    }

    private static Dictionary<string, object> Row(Case c, PeakResult peak, double rowPeak, int rounds, bool bf16, Span peerStep)
    {
            ResidentMemory.ResetPeak();
            torch.manual_seed(0);
            using var model = new Qwen2ForCausalLM(c.Size.Config, torch.CPU, ScalarType.Float32);
            model.Precision.Dtype = bf16 ? ScalarType.BFloat16 : null;
            model.train();
            var parameters = model.parameters().ToList();
            using var optimizer = new Optimizers.AdamW(parameters, 1e-4, 0.01);
            using var ids = torch.randint(c.Size.Config.VocabSize, [c.Batch, c.SequenceLength]);
            // Where the step's wall time goes, from the fastest round: forward with the loss, backward, and the
            // optimizer (clipping, AdamW, zeroing, the collection), so the rest beside the products can be placed.
            (double Total, double Forward, double Backward) fastest = (double.MaxValue, 0, 0);
            var step = BenchClock.Best(rounds, () =>
            {
                using var scope = torch.NewDisposeScope();
                var clock = System.Diagnostics.Stopwatch.StartNew();
                var logits = model.Forward(ids).Logits;                                         // [B,T,V]
                var nll = -TokenStatistics.LogProbs(logits.narrow(1, 0, c.SequenceLength - 1), ids.narrow(1, 1, c.SequenceLength - 1), 1.0).mean();
                var forward = clock.Elapsed.TotalSeconds;
                nll.backward();
                var backward = clock.Elapsed.TotalSeconds - forward;
                nn.utils.clip_grad_norm_(parameters, 1.0);
                optimizer.step();
                optimizer.zero_grad();
                FinalizerPass.Run();   // as the trainer does after each optimizer step
                var total = clock.Elapsed.TotalSeconds;
                if (total < fastest.Total) fastest = (total, forward, backward);
            });
            double tokens = (double)c.Batch * c.SequenceLength;
            var floor = GemmFloor.Seconds(c.Size.Config, c.Batch, c.SequenceLength, bf16 ? ScalarType.BFloat16 : ScalarType.Float32, rounds);
            var flops = BenchModels.TrainFlopsPerToken(c.Size.Config, (c.SequenceLength + 1) / 2.0) * tokens;
            return new()
            {
                ["model"] = c.Size.Name,
                ["precision"] = bf16 ? "bf16" : "float32",
                ["params_M"] = model.parameters().Sum(p => p.numel()) / 1e6,
                ["batch x seq"] = $"{c.Batch}x{c.SequenceLength}",
                ["tokens"] = (int)tokens,
                ["step_s"] = step.Wall,
                ["step_cpu_s"] = step.Cpu,
                ["tok_s"] = tokens / step.Wall,
                ["tok_per_cpu_s"] = tokens / step.Cpu,
                ["gflops"] = flops / step.Wall / 1e9,
                ["mfu_wall"] = flops / step.Wall / 1e9 / rowPeak,
                ["mfu_cpu"] = flops / step.Cpu / 1e9 / peak.GflopsCpu,
                ["peak_rss_mib"] = ResidentMemory.PeakMiB(),
                ["peer_tok_s"] = tokens / peerStep.Wall,
                ["peer_tok_per_cpu_s"] = tokens / peerStep.Cpu,
                ["vs_peer"] = peerStep.Wall / step.Wall,
                ["vs_peer_cpu"] = peerStep.Cpu / step.Cpu,
                ["forward_s"] = fastest.Forward,
                ["backward_s"] = fastest.Backward,
                ["optimizer_s"] = fastest.Total - fastest.Forward - fastest.Backward,
                ["gemm_floor_s"] = floor.Wall,
                ["gemm_share"] = floor.Wall / step.Wall,
                ["max_vs_peer"] = peerStep.Wall / floor.Wall,
                ["target"] = ">= 1.3",
            };
    }
}
