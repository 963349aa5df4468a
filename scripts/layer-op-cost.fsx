// Where one decoder layer's time goes at real scale (issue 34): the ops of a Qwen2.5-0.5B layer, forward + backward
// (input gradients only, as for a frozen LoRA base), at one micro-batch of the scale bench (8 rows x 640 positions =
// 5,120 rows), bf16 compute, two threads; each op alone, best of 5 after 2 warm-up rounds. Multiply by the count in
// the name for a layer's total. Run it with the allocator settings the engine uses at this size (huge pages and a
// 2 MiB mmap threshold, Runtime/NativeHeap.cs); without them every fresh tensor faults in 4 KiB pages and the
// elementwise ops look 5-10x slower than they are in a run:
//   dotnet build -c Release src/Popo.Cli && LD_LIBRARY_PATH=src/Popo.Cli/bin/Release/net10.0/runtimes/linux-x64/native \
//   THP_MEM_ALLOC_ENABLE=1 MALLOC_MMAP_THRESHOLD_=2097152 MALLOC_TRIM_THRESHOLD_=67108864 dotnet fsi scripts/layer-op-cost.fsx
// The RMSNorm and silu(gate) * up rows time libtorch's ops through autograd, which the engine used until RmsNormFunction
// and SwiGluFunction (src/Popo.Engine/Model/Autograd) took them over with kernels of their own (Popo.Kernels, internal).
#r "../src/Popo.Cli/bin/Release/net10.0/TorchSharp.dll"
open System.Diagnostics
open TorchSharp
open type TorchSharp.torch

torch.set_num_threads 2
let rows, hidden, inter, heads, kvHeads, headDim, t = 5120L, 896L, 4864L, 14L, 2L, 64L, 640L
let bf = ScalarType.BFloat16
let mutable layerMs = 0.0

/// Best of 5 timings of f, in ms; count = how often a layer runs it.
let time (name: string) (count: int) (f: unit -> unit) =
    for _ in 1 .. 2 do f ()
    let best = Seq.min [ for _ in 1 .. 5 -> (let sw = Stopwatch.StartNew() in f (); sw.Elapsed.TotalMilliseconds) ]
    layerMs <- layerMs + Operators.float count * best
    printfn "%-44s x%d %8.2f ms" name count best

/// Forward, then backward from ones, then the leaves' gradients dropped.
let forwardBackward (build: unit -> Tensor * Tensor list) () =
    use scope = torch.NewDisposeScope()
    let y, leaves = build ()
    y.backward([| torch.ones_like(y) |])
    for l in leaves do l.grad <- null

let leaf (x: Tensor) = x.detach().requires_grad_(true)

for inF, outF, count, name in [ hidden, hidden, 2, "q, o"; hidden, kvHeads * headDim, 2, "k, v"; hidden, inter, 2, "gate, up"; inter, hidden, 1, "down" ] do
    let w = torch.randn([| outF; inF |], dtype = bf) * 0.02
    let x0 = torch.randn([| rows; inF |], dtype = bf)
    time $"linear {inF}->{outF} ({name})" count (forwardBackward (fun () -> let x = leaf x0 in nn.functional.linear(x, w), [ x ]))

let x0 = torch.randn([| rows; hidden |], dtype = bf)
let eps, two = (1e-6).ToScalar(), (2.0).ToScalar()
let norm = torch.ones(hidden, dtype = bf)
time "RMSNorm (float32 statistics, as RmsNorm.cs)" 2 (forwardBackward (fun () ->
    let x = leaf x0
    let wide = x.``to``(ScalarType.Float32)
    norm * (wide * (wide.pow(two).mean([| -1L |], keepdim = true) + eps).rsqrt()).``to``(bf), [ x ]))
let g0 = torch.randn([| rows; inter |], dtype = bf)
time "silu(gate) * up" 1 (forwardBackward (fun () -> let g, u = leaf g0, leaf g0 in nn.functional.silu(g).mul(u), [ g; u ]))
let cos, sin = torch.randn([| 8L; 1L; t; headDim |], dtype = bf), torch.randn([| 8L; 1L; t; headDim |], dtype = bf)
for h, name in [ heads, "q"; kvHeads, "k" ] do
    let q0 = torch.randn([| 8L; h; t; headDim |], dtype = bf)
    time $"RoPE on {name}" 1 (forwardBackward (fun () ->
        let q = leaf q0
        let half = headDim / 2L
        q * cos + torch.cat([| q.narrow(-1L, half, half).neg(); q.narrow(-1L, 0L, half) |], -1L) * sin, [ q ]))
time "residual add" 2 (forwardBackward (fun () -> let x = leaf x0 in x + x0, [ x ]))
let groups = heads / kvHeads
let q0 = torch.randn([| 8L; kvHeads; groups * t; headDim |], dtype = bf)
let k0 = torch.randn([| 8L; kvHeads; t; headDim |], dtype = bf)
let allowed = torch.ones([| t; t |], dtype = ScalarType.Bool).tril().repeat(groups, 1L).expand(8L, 1L, groups * t, t)
let masked, scale = System.Double.NegativeInfinity.ToScalar(), (1.0 / sqrt (Operators.float headDim)).ToScalar()
time "attention, unchunked masked softmax through autograd (until 2026-12-07)" 0 (forwardBackward (fun () ->
    let q, k, v = leaf q0, leaf k0, leaf k0
    q.matmul(k.transpose(-1L, -2L)).mul_(scale).masked_fill(allowed.logical_not(), masked).softmax(-1L).matmul(v), [ q; k; v ]))
time "attention, libtorch's fused kernel" 0 (forwardBackward (fun () ->
    let q, k, v = leaf q0, leaf k0, leaf k0
    nn.functional.scaled_dot_product_attention(q, k, v, allowed), [ q; k; v ]))
// CausalAttention's math (src/Popo.Engine/Model/Autograd/CausalAttention.cs): queries position-major, chunks of 64
// positions against the keys up to the chunk's end, its own backward from the saved probabilities.
let chunk = 64L
let notAllowed = torch.ones([| t; t |], dtype = ScalarType.Bool).tril().logical_not().expand(8L, 1L, t, t)
let dOut = torch.randn([| 8L; kvHeads; groups * t; headDim |], dtype = bf)
time "attention, chunked by 64 positions, own backward (the path)" 1 (fun () ->
    use scope = torch.NewDisposeScope()
    let o = torch.empty_like(q0)
    let ps = ResizeArray()
    let mutable t0 = 0L
    while t0 < t do
        let t1 = Operators.min t (t0 + chunk)
        let s = q0.narrow(2L, t0 * groups, (t1 - t0) * groups).matmul(k0.narrow(2L, 0L, t1).transpose(-1L, -2L)).mul_(scale)
        s.view(8L, kvHeads, t1 - t0, groups, t1).masked_fill_(notAllowed.narrow(2L, t0, t1 - t0).narrow(3L, 0L, t1).unsqueeze(3L), masked) |> ignore
        let p = s.softmax(-1L)
        o.narrow(2L, t0 * groups, (t1 - t0) * groups).copy_(p.matmul(k0.narrow(2L, 0L, t1))) |> ignore
        ps.Add((t0, t1, p))
        t0 <- t1
    let d = dOut.mul(o).sum([| -1L |], true)
    let dq = torch.empty_like(q0)
    let dk = torch.zeros([| 8L; kvHeads; t; headDim |], dtype = ScalarType.Float32)
    let dv = torch.zeros([| 8L; kvHeads; t; headDim |], dtype = ScalarType.Float32)
    for (t0, t1, p) in ps do
        let rows = (t1 - t0) * groups
        let g = dOut.narrow(2L, t0 * groups, rows)
        dv.narrow(2L, 0L, t1).add_(p.transpose(-1L, -2L).matmul(g)) |> ignore
        let ds = g.matmul(k0.narrow(2L, 0L, t1).transpose(-1L, -2L)).sub_(d.narrow(2L, t0 * groups, rows)).mul_(p)
        dq.narrow(2L, t0 * groups, rows).copy_(ds.matmul(k0.narrow(2L, 0L, t1)).mul_(scale)) |> ignore
        dk.narrow(2L, 0L, t1).add_(ds.transpose(-1L, -2L).matmul(q0.narrow(2L, t0 * groups, rows)).mul_(scale)) |> ignore
    dk.``to``(bf).Dispose()
    dv.``to``(bf).Dispose())
printfn "one layer's forward + backward, the ops above x their counts (chunked attention): %.0f ms" layerMs
