// Where one decoder layer's time goes at real scale (issue 34): the ops of a Qwen2.5-0.5B layer, forward + backward
// (input gradients only, as for a frozen LoRA base), at one micro-batch of the scale bench (8 rows x 640 positions =
// 5,120 rows), bf16 compute, two threads; each op alone, best of 5 after 2 warm-up rounds. Multiply by the count in
// the name for a layer's total. Run it with the allocator settings the engine uses at this size (huge pages and a
// 2 MiB mmap threshold, Runtime/NativeHeap.cs); without them every fresh tensor faults in 4 KiB pages and the
// elementwise ops look 5-10x slower than they are in a run:
//   dotnet build -c Release src/Popo.Cli && LD_LIBRARY_PATH=src/Popo.Cli/bin/Release/net10.0/runtimes/linux-x64/native \
//   THP_MEM_ALLOC_ENABLE=1 MALLOC_MMAP_THRESHOLD_=2097152 MALLOC_TRIM_THRESHOLD_=67108864 dotnet fsi scripts/layer-op-cost.fsx
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
time "attention, explicit (bf16's path)" 1 (forwardBackward (fun () ->
    let q, k, v = leaf q0, leaf k0, leaf k0
    q.matmul(k.transpose(-1L, -2L)).mul_(scale).masked_fill(allowed.logical_not(), masked).softmax(-1L).matmul(v), [ q; k; v ]))
time "attention, libtorch's fused kernel" 0 (forwardBackward (fun () ->
    let q, k, v = leaf q0, leaf k0, leaf k0
    nn.functional.scaled_dot_product_attention(q, k, v, allowed), [ q; k; v ]))
printfn "one layer's forward + backward, the ops above x their counts (explicit attention): %.0f ms" layerMs
