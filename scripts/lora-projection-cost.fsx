// What a LoRA adapter adds to a frozen projection's forward + backward (issue 15), in the formulations the engine
// has used: the delta B A x as its own [rows, out] tensor added into y (before 66f1845), and one in-place addmm of
// (s A x) B^T into y (LoraAdapter.Add now); beside them the frozen projection alone and the fully trained one (dW).
// The Qwen2.5-0.5B shapes at one micro-batch of the scale bench (8 x 640 rows), bf16 compute, float32 adapter masters.
// Run: dotnet build -c Release && LD_LIBRARY_PATH=src/Popo.Cli/bin/Release/net10.0/runtimes/linux-x64/native \
//      dotnet fsi scripts/lora-projection-cost.fsx
#r "../src/Popo.Cli/bin/Release/net10.0/TorchSharp.dll"
#r "../src/Popo.Cli/bin/Release/net10.0/Popo.Engine.dll"
open System.Diagnostics
open TorchSharp
open type TorchSharp.torch

Popo.Engine.Runtime.NativeHeap.RequestHugePages()
Popo.Engine.Runtime.NativeHeap.ConfigureFor 500_000_000L |> ignore
torch.set_num_threads 2
let rows, rank = 5120L, 16L

let time name (f: unit -> unit) =
    for _ in 1 .. 3 do f ()
    let n = 10
    let sw = Stopwatch.StartNew()
    for _ in 1 .. n do f ()
    printfn "%-44s %8.2f ms" name (sw.Elapsed.TotalMilliseconds / Operators.float n)

for inF, outF in [ 896L, 4864L; 4864L, 896L; 896L, 896L ] do
    printfn "-- %d -> %d, %d rows" inF outF rows
    let w = torch.randn([| outF; inF |], dtype = ScalarType.BFloat16) * 0.02
    let trained = (torch.randn([| outF; inF |], dtype = ScalarType.BFloat16) * 0.02).requires_grad_(true)
    let a = (torch.randn([| rank; inF |]) * 0.02).requires_grad_(true)
    let b = (torch.randn([| outF; rank |]) * 0.02).requires_grad_(true)
    let x0 = torch.randn([| rows; inF |], dtype = ScalarType.BFloat16)
    let g = torch.randn([| rows; outF |], dtype = ScalarType.BFloat16)
    let pass (forward: Tensor -> Tensor) () =
        use scope = torch.NewDisposeScope()
        let x = x0.detach().requires_grad_(true)
        (forward x).backward([| g |])
        for p in [ trained; a; b ] do p.grad <- null
    let adapters () = a.``to``(ScalarType.BFloat16), b.``to``(ScalarType.BFloat16)
    time "frozen: forward + dx" (pass (fun x -> nn.functional.linear(x, w)))
    time "trained: forward + dx + dW" (pass (fun x -> nn.functional.linear(x, trained)))
    time "LoRA, delta tensor added: + dA, dB" (pass (fun x ->
        let a16, b16 = adapters ()
        nn.functional.linear(x, w).add_(nn.functional.linear(nn.functional.linear(x, a16), b16), alpha = 2.0)))
    time "LoRA, one in-place addmm: + dA, dB" (pass (fun x ->
        let a16, b16 = adapters ()
        nn.functional.linear(x, w).addmm_(nn.functional.linear(x, a16).mul_(Scalar.op_Implicit 2.0), b16.t())))
