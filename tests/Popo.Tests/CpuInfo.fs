/// Fields of /proc/cpuinfo, for tests whose expectation depends on the CPU.
module Popo.Tests.CpuInfo

open System.IO

/// The value of the first line named <paramref name="name"/> (None off Linux).
let field (name: string) =
    if File.Exists "/proc/cpuinfo" then
        File.ReadLines "/proc/cpuinfo" |> Seq.tryFind (fun l -> l.StartsWith name) |> Option.map (fun l -> l.Split(':', 2).[1].Trim())
    else None

/// Whether the CPU's "flags" line lists <paramref name="flag"/>.
let hasFlag (flag: string) =
    field "flags" |> Option.exists (fun l -> l.Split ' ' |> Array.contains flag)
