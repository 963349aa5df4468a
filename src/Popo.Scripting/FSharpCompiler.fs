namespace Popo.Scripting

open System
open System.Collections.Generic
open System.IO
open FSharp.Compiler.CodeAnalysis
open FSharp.Compiler.Diagnostics

/// One compiler message: the file, the line and column (both from 1) and what the compiler said.
type CompilerDiagnostic =
    { File: string
      Line: int
      Column: int
      IsError: bool
      Code: string
      Message: string }

    /// The compiler's own layout: <c>file(line,column): error FS0001: message</c>.
    override d.ToString() =
        let kind = if d.IsError then "error" else "warning"
        $"{d.File}({d.Line},{d.Column}): {kind} {d.Code}: {d.Message}"

/// What a compilation gave: whether the assembly was written, and every diagnostic (errors and warnings) in order.
type CompileResult =
    { Succeeded: bool
      Diagnostics: IReadOnlyList<CompilerDiagnostic> }

    /// The errors alone.
    member r.Errors: IReadOnlyList<CompilerDiagnostic> = r.Diagnostics |> Seq.filter (fun d -> d.IsError) |> Array.ofSeq :> _

/// F# sources (.fs or .fsx) compiled in process with FSharp.Compiler.Service against the running runtime's own
/// assemblies, so it needs no SDK, reference pack or network: what the process runs on is what the code compiles against.
[<AbstractClass; Sealed>]
type FSharpCompiler private () =
    // One checker for the process: creating one is costly, and the compiler is not meant to run twice at once on it.
    static let checker = lazy (FSharpChecker.Create())
    static let gate = obj ()

    /// The assemblies every compilation references: the shared framework the process runs on and its FSharp.Core.
    static member FrameworkReferences: IReadOnlyList<string> =
        let runtimeDir = Path.GetDirectoryName(typeof<obj>.Assembly.Location)
        let trusted =
            match AppContext.GetData "TRUSTED_PLATFORM_ASSEMBLIES" with
            | :? string as s -> s.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries) |> List.ofArray
            | _ -> []
        let framework =
            trusted
            |> List.filter (fun p -> String.Equals(Path.GetDirectoryName p, runtimeDir, StringComparison.Ordinal))
        let framework =
            if framework.IsEmpty then Directory.GetFiles(runtimeDir, "*.dll") |> List.ofArray else framework
        // Native libraries of the framework folder are not assemblies; the compiler would reject them.
        let managed =
            framework
            |> List.filter (fun p ->
                try
                    Reflection.AssemblyName.GetAssemblyName p |> ignore
                    true
                with _ -> false)
        managed @ [ typeof<option<int>>.Assembly.Location ] |> Array.ofList :> _

    /// Compiles <paramref name="sources"/> (in order) into <paramref name="output"/>, a library or, when
    /// <paramref name="executable"/>, a console program, referencing <see cref="FrameworkReferences"/> and
    /// <paramref name="references"/>.
    static member Compile(sources: string seq, references: string seq, output: string, executable: bool) : CompileResult =
        let sources = List.ofSeq sources
        let references = List.ofSeq FSharpCompiler.FrameworkReferences @ List.ofSeq references |> List.distinctBy Path.GetFileName
        let args =
            [| "fsc.exe"
               "-o"
               output
               (if executable then "--target:exe" else "--target:library")
               "--noframework"
               "--nowin32manifest"
               "--targetprofile:netcore"
               "--optimize+"
               "--debug-"
               yield! references |> List.map (fun r -> "-r:" + r)
               yield! sources |]
        let diagnostics, failure =
            lock gate (fun () -> checker.Value.Compile(args) |> Async.RunSynchronously)
        let listed =
            [ for d in diagnostics ->
                  { File = d.FileName
                    Line = d.StartLine
                    Column = d.StartColumn + 1
                    IsError = (d.Severity = FSharpDiagnosticSeverity.Error)
                    Code = d.ErrorNumberText
                    Message = d.Message } ]
        let hasError = listed |> List.exists (fun d -> d.IsError)
        // A compiler that stopped without an error message of its own still says why.
        let listed =
            match failure with
            | Some e when not hasError ->
                listed @ [ { File = String.Join(", ", sources); Line = 0; Column = 0; IsError = true; Code = "compiler"; Message = e.Message } ]
            | _ -> listed
        let failed = failure.IsSome || hasError || not (File.Exists output)
        { Succeeded = not failed; Diagnostics = Array.ofList listed }
