/// `popo` asks libtorch's CPU allocator for transparent huge pages (Runtime/NativeHeap.RequestHugePages) unless the
/// environment says otherwise. Checked in `popo` processes: libtorch reads the variable once, at its first allocation.
module Popo.Tests.Reliability.HugePages

open Expecto
open Popo.Tests.Reliability.Harness

let private reported environment = benchMeta environment "huge_pages"

[<Tests>]
let tests =
    testSequenced <| testList "reliability/huge-pages" [
        testCase "huge pages for libtorch's allocations by default; THP_MEM_ALLOC_ENABLE=0 keeps them off" <| fun () ->
            let byDefault = reported [ "THP_MEM_ALLOC_ENABLE", "" ]
            let off = reported [ "THP_MEM_ALLOC_ENABLE", "0" ]
            if System.OperatingSystem.IsLinux() then
                Expect.stringStarts byDefault "THP_MEM_ALLOC_ENABLE=1, kernel " "asked for by default"
                Expect.stringStarts off "THP_MEM_ALLOC_ENABLE=0, kernel " "the user's 0 is kept"
            else
                Expect.equal byDefault "not applicable" "Linux only"
    ]
