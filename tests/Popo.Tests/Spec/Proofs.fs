/// proofs/*.md name the tests that check each theorem ("Checked by:"); this keeps those names honest.
module Popo.Tests.Spec.Proofs

open System.IO
open System.Text.RegularExpressions
open Expecto
open Expecto.Impl

type private Marker = class end

/// The repository root: the nearest ancestor of the test binaries holding proofs/ and src/.
let private repoRoot () =
    let rec up (d: DirectoryInfo) =
        if isNull d then failwith "no ancestor of the test binaries holds proofs/ and src/"
        elif Directory.Exists(Path.Combine(d.FullName, "proofs")) && Directory.Exists(Path.Combine(d.FullName, "src")) then d.FullName
        else up d.Parent
    up (DirectoryInfo System.AppContext.BaseDirectory)

/// Test names as `dotnet test` shows them (list/test), like the xunit bridge.
let private testNames () =
    match testFromAssembly typeof<Marker>.DeclaringType.Assembly with
    | Some t -> Test.toTestCodeList t |> List.map (fun flat -> flat.fullName "/") |> set
    | None -> Set.empty

[<Tests>]
let tests =
    testList "spec/proofs" [
        testCase "every test named in proofs exists" <| fun () ->
            let names = testNames ()
            let pages = Directory.GetFiles(Path.Combine(repoRoot (), "proofs"), "*.md") |> Array.filter (fun p -> Path.GetFileName p <> "README.md")
            Expect.isGreaterThanOrEqual pages.Length 9 "one page per theorem family, the false claims and the reference numbers"
            for page in pages do
                let text = File.ReadAllText page
                Expect.stringContains text "Checked by:" (sprintf "%s has a 'Checked by:' section" page)
                let named = Regex.Matches(text, "`((?:spec|engine)/[^`]+)`") |> Seq.map (fun m -> m.Groups.[1].Value) |> List.ofSeq
                Expect.isNonEmpty named (sprintf "%s names at least one test" page)
                for n in named do
                    Expect.isTrue (names.Contains n) (sprintf "%s names `%s`, which is not a test" (Path.GetFileName page) n)
    ]
