// Writes stars.jsonl, the custom task of this folder: "Write N stars." for N in 3..30, each row with the target
// count as its own column (`target`), the answer and a worked solution (N stars) for the supervised warm-up.
// Run: dotnet fsi make-dataset.fsx   (deterministic: the same file every time)
open System.IO

let rows = 2000
let random = System.Random 30
let lines =
    [ for i in 0 .. rows - 1 ->
          let n = random.Next(3, 31)
          sprintf """{"id": "stars-%04d", "problem": "Write %d stars.", "answer": "%d", "solution": "%s", "target": %d}"""
              i n n (String.replicate n "*") n ]
File.WriteAllLines(Path.Combine(__SOURCE_DIRECTORY__, "stars.jsonl"), lines)
printfn "wrote %d rows to stars.jsonl" rows
