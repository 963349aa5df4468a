/// The engine's AdamW (Optimizers.AdamW: TorchSharp's update with every Scalar held across its native call,
/// the fix for the "Unknown scalar type" crashes under a busy test process) must be TorchSharp's AdamW bit
/// for bit: the same parameters after every step and the same optimizer.bin bytes.
module Popo.Tests.Engine.OptimizerHeldScalars

open System.IO
open Expecto
open TorchSharp
open Popo.Engine.Training

let private parameters (seed: int) =
    use g = new torch.Generator(uint64 seed, torch.CPU)
    // 300 x 7 = 2,100 elements: with 256-element pieces, eight whole pieces and a ragged one.
    [ for shape in [ [| 3L; 4L |]; [| 5L |]; [| 300L; 7L |] ] ->
          let p = new Modules.Parameter(torch.randn(shape, dtype = torch.ScalarType.Float32, generator = g))
          p ]

let private stateBytes (o: Modules.AdamW) =
    use stream = new MemoryStream()
    use writer = new BinaryWriter(stream)
    o.save_state_dict(writer)
    writer.Flush()
    stream.ToArray()

let private bits (ps: Modules.Parameter list) =
    ps |> List.map (fun p -> p.detach().contiguous().data<float32>().ToArray() |> Array.map System.BitConverter.SingleToInt32Bits)

[<Tests>]
let tests =
    testList "engine/optimizer" [
      for piece in [ Optimizers.AdamW.DefaultPieceElements; 256L; 64L ] do
        testCase $"Optimizers.AdamW in pieces of {piece} elements equals TorchSharp's AdamW bit for bit over steps with weight decay and a changing rate" <| fun () ->
            let reference = parameters 5
            let held = parameters 5
            use a = torch.optim.AdamW((reference |> Seq.ofList : seq<Modules.Parameter>), lr = 0.01, weight_decay = 0.01)
            use b = new Optimizers.AdamW((held |> Seq.ofList : seq<Modules.Parameter>), 0.01, 0.01, piece)
            use g = new torch.Generator(9UL, torch.CPU)
            for step in 1 .. 6 do
                a.zero_grad()
                b.zero_grad()
                for (p: Modules.Parameter), q in List.zip reference held do
                    use grad = torch.randn(p.shape, dtype = p.dtype, generator = g)
                    // d/dp sum(p * grad) = grad
                    use lp = (p * grad).sum()
                    lp.backward()
                    use lq = (q * grad).sum()
                    lq.backward()
                for group in a.ParamGroups do group.LearningRate <- 0.01 / float step
                for group in b.ParamGroups do group.LearningRate <- 0.01 / float step
                a.step() |> ignore
                b.step() |> ignore
                Expect.equal (bits held) (bits reference) $"parameters after step {step}"
            Expect.equal (stateBytes b) (stateBytes a) "optimizer state bytes"

      testCase "Optimizers.AdamW refuses a piece size that is not a positive multiple of 64" <| fun () ->
          let ps = parameters 1
          for bad in [ 0L; -64L; 100L ] do
              Expect.throwsT<System.ArgumentOutOfRangeException> (fun () -> new Optimizers.AdamW((ps |> Seq.ofList : seq<Modules.Parameter>), 0.01, 0.01, bad) |> ignore) $"piece {bad}"
    ]
