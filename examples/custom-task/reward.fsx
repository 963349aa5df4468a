// The star-count reward as an F# script: `--reward-funcs reward.fsx`. Popo compiles it once when the run starts
// (Popo.Rewards is referenced for it) and calls `reward` on every rollout: 1.0 for exactly the target number of stars,
// decaying by a factor e^(1/4) with each star too many or too few and each other character; None (not applicable) for a
// row without a target.
open System
open Popo.Rewards

/// The row's target count: its `target` column, else its `answer`.
let target (sample: RewardSample) =
    let node =
        match sample.Columns["target"] with
        | null -> sample.Columns["answer"]
        | t -> t
    match node with
    | null -> None
    | n ->
        match Int32.TryParse(n.ToString()) with
        | true, v -> Some v
        | _ -> None

let reward (sample: RewardSample) : float option =
    target sample
    |> Option.map (fun n ->
        let stars = sample.Completion |> Seq.filter ((=) '*') |> Seq.length
        let others = sample.Completion.Length - stars
        exp (-(float (abs (stars - n) + others)) / 4.0))
