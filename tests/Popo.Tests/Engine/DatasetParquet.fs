/// Parquet datasets (issue 30): a Parquet file and its JSONL twin give the same problems in the same order (every
/// shape, nested list and struct columns included) and the same training run; bad rows name file, row and column.
/// The Parquet files are written here with Parquet.Net from the same records as their JSONL twins.
module Popo.Tests.Engine.DatasetParquet

open System
open System.Collections.Generic
open System.IO
open System.Text.Json.Nodes
open Expecto
open Parquet.Schema
open Parquet.Serialization
open Popo.Engine.Data
open Popo.Tests.Reliability.Harness

/// Parquet.Net 6 declares a string field's CLR type as ReadOnlyMemory<char>? (string in older versions).
let private isString (d: DataField) =
    d.ClrType = typeof<string> || d.ClrType = typeof<Nullable<ReadOnlyMemory<char>>> || d.ClrType = typeof<ReadOnlyMemory<char>>

/// A JSON value as the CLR value Parquet.Net's untyped writer takes for a field of this schema.
let rec private clr (field: Field) (v: JsonNode) : obj =
    match field, v with
    | _, null -> null
    | (:? ListField as l), (:? JsonArray as a) ->
        match l.Item with
        | :? StructField as s -> box (List<IDictionary<string, obj>>([ for x in a -> row s.Fields (x.AsObject()) ]))
        | :? DataField as d when isString d -> box (List<Nullable<ReadOnlyMemory<char>>>([ for x in a -> Nullable(x.GetValue<string>().AsMemory()) ]))
        | :? DataField as d when d.ClrType = typeof<int64> && not d.IsNullable -> box (List<int64>([ for x in a -> x.GetValue<int64>() ]))
        | :? DataField as d when d.ClrType = typeof<int64> || d.ClrType = typeof<Nullable<int64>> -> box (List<Nullable<int64>>([ for x in a -> Nullable(x.GetValue<int64>()) ]))
        | f -> failwithf "no test conversion for a list of %O" f
    | (:? StructField as s), (:? JsonObject as o) -> box (row s.Fields o)
    | (:? DataField as d), _ when isString d -> box (v.GetValue<string>())
    | (:? DataField as d), _ when d.ClrType = typeof<int64> || d.ClrType = typeof<Nullable<int64>> -> box (v.GetValue<int64>())
    | (:? DataField as d), _ when d.ClrType = typeof<double> -> box (v.GetValue<double>())
    | f, _ -> failwithf "no test conversion for %O" f

and private row (fields: IReadOnlyList<Field>) (o: JsonObject) : IDictionary<string, obj> =
    let d = Dictionary<string, obj>()
    for f in fields do d[f.Name] <- (match o[f.Name] with null -> null | v -> clr f v)
    d :> _

/// Writes the records as JSON lines and as a Parquet file with this schema (rowGroup rows per row group); returns both paths.
let private twins (root: string) (name: string) (schema: ParquetSchema) (rowGroup: int) (records: string list) =
    let jsonl, parquet = Path.Combine(root, name + ".jsonl"), Path.Combine(root, name + ".parquet")
    File.WriteAllLines(jsonl, records)
    let rows = [| for r in records -> row schema.Fields (JsonNode.Parse(r).AsObject()) |]
    do
        use stream = File.Create parquet
        ParquetSerializer.SerializeUntypedAsync(rows, schema, stream, Parquet.ParquetOptions(RowGroupSize = Nullable rowGroup)).GetAwaiter().GetResult()
    jsonl, parquet

/// A problem's fields (the messages as a list: records compare lists by reference), its default id
/// ("file-name:number") made independent of the file's extension.
let private comparable (p: Problem) =
    p.Id.Replace(".parquet:", ".jsonl:"), p.Prompt, p.Answer, p.Solution, (if isNull p.Messages then None else Some (List.ofSeq p.Messages))

let private same (jsonl: string) (parquet: string) (options: DatasetOptions) =
    let a, b = Dataset.Load(jsonl, options), Dataset.Load(parquet, options)
    Expect.equal b.Shape a.Shape "shape"
    Expect.equal (b.Problems |> Seq.map comparable |> List.ofSeq) (a.Problems |> Seq.map comparable |> List.ofSeq) "problems, in order"
    Expect.equal (b.Skipped |> Seq.map (fun e -> e.Line, e.Field) |> List.ofSeq) (a.Skipped |> Seq.map (fun e -> e.Line, e.Field) |> List.ofSeq) "skipped records"
    a, b

let private str name = DataField<string>(name, true) :> Field
let private int64Field name = DataField<int64>(name, true) :> Field

let private gsm8k =
    [ """{"question": "Tom has 3 apples and buys 4 more. How many?", "answer": "He has 3 + 4 = <<3+4=7>>7.\n#### 7"}"""
      """{"question": "A box holds 12 eggs. How many in 2 boxes?", "answer": "2 * 12 = <<2*12=24>>24\n#### 24"}"""
      """{"question": "What is 10 - 13?", "answer": "10 - 13 = -3\n#### -3"}""" ]

let private conversational =
    [ """{"id": "c1", "prompt": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Compute 7*6."}], "ground_truth": 42, "tags": ["mul", "small"], "meta": {"source": "gen", "level": 1}}"""
      """{"id": "c2", "prompt": [{"role": "user", "content": "Compute 9+10."}], "ground_truth": 19, "tags": [], "meta": {"source": "gen", "level": 2}}""" ]

let private conversationalSchema =
    ParquetSchema(
        str "id",
        ListField("prompt", StructField("element", str "role", str "content")),
        int64Field "ground_truth",
        ListField("tags", str "element"),
        StructField("meta", str "source", int64Field "level"))

let private raises (f: unit -> unit) =
    try f (); failtest "expected a DatasetFormatException" with :? DatasetFormatException as e -> e

[<Tests>]
let tests =
    testList "engine/dataset/parquet" [
        test "GSM8K shape: the Parquet twin gives the same problems (ids from file and row), across row groups" {
            withTemp (fun root ->
                let jsonl, parquet = twins root "gsm8k" (ParquetSchema(str "question", str "answer")) 2 gsm8k
                let _, b = same jsonl parquet (DatasetOptions())
                Expect.equal (b.Problems |> Seq.map (fun p -> p.Id, p.Answer) |> List.ofSeq) [ "gsm8k.parquet:1", "7"; "gsm8k.parquet:2", "24"; "gsm8k.parquet:3", "-3" ] "ids and gold")
        }
        test "MATH shape with a numeric id and answer: numbers become the same text as in JSON" {
            withTemp (fun root ->
                let records =
                    [ """{"unique_id": 17, "problem": "What is 1/2 + 1/4?", "answer": "\\frac{3}{4}", "solution": "It is \\boxed{\\frac{3}{4}}."}"""
                      """{"unique_id": 18, "problem": "How many sides does a hexagon have?", "answer": "6", "solution": null}""" ]
                let jsonl, parquet = twins root "math" (ParquetSchema(int64Field "unique_id", str "problem", str "answer", str "solution")) 10 records
                let _, b = same jsonl parquet (DatasetOptions(PromptTemplate = "Q: {question}"))
                Expect.equal b.Problems.[0].Id "17" "numeric id as written"
                Expect.isNull b.Problems.[1].Solution "a null solution")
        }
        test "TRL conversational shape: a list<struct{role, content}> prompt column is the same conversation" {
            withTemp (fun root ->
                let jsonl, parquet = twins root "trl" conversationalSchema 10 conversational
                let a, b = same jsonl parquet (DatasetOptions(AnswerField = "ground_truth"))
                Expect.equal b.Shape DatasetShape.Prompt "detected"
                Expect.equal (b.Problems |> Seq.map (fun p -> p.Prompt, p.Answer) |> List.ofSeq) [ "Compute 7*6.", "42"; "Compute 9+10.", "19" ] "prompts, answers"
                Expect.equal b.Problems.[0].Messages.Count 2 "the system message is kept"
                Expect.equal (a.Problems.[0].Messages |> List.ofSeq) (b.Problems.[0].Messages |> List.ofSeq) "messages")
        }
        test "nested columns become the JSON values the JSONL reader sees" {
            let list = ParquetDataset.ToNode(List<obj>([ box (Dictionary<string, obj>(dict [ "role", box "user"; "content", box ("hi".AsMemory()) ])); null ]))
            Expect.equal (list.ToJsonString()) """[{"role":"user","content":"hi"},null]""" "list of structs, null element"
            Expect.equal ((ParquetDataset.ToNode(box 3)).ToJsonString()) "3" "int"
            Expect.equal ((ParquetDataset.ToNode(box 0.1f)).ToJsonString()) "0.1" "float as its shortest decimal"
            Expect.equal ((ParquetDataset.ToNode(box true)).ToJsonString()) "true" "bool"
            Expect.isNull (ParquetDataset.ToNode null) "null"
        }
        test "a missing column, a wrong type and a null name the file, the row and the column; skip_bad_lines counts them" {
            withTemp (fun root ->
                let records =
                    [ """{"problem": "1+1?", "answer": "2"}"""
                      """{"problem": "2+2?", "answer": null}"""
                      """{"problem": "3+3?", "answer": "6"}""" ]
                let _, parquet = twins root "math" (ParquetSchema(str "problem", str "answer")) 10 records
                let e = raises (fun () -> ParquetDataset.Load parquet |> ignore)
                Expect.equal (e.Line, e.Field, e.Record) (2, "answer", DatasetRecord.Row) "row and column"
                Expect.stringContains e.Message (parquet + ": row 2: column 'answer': expected a string or a number, got null") "message"
                let d = ParquetDataset.Load(parquet, DatasetOptions(SkipBadLines = true))
                Expect.equal (d.Problems |> Seq.map (fun p -> p.Answer) |> List.ofSeq) [ "2"; "6" ] "the good rows"
                Expect.equal (d.Skipped |> Seq.map (fun e -> e.Line, e.Field) |> List.ofSeq) [ 2, "answer" ] "the skipped row"
                let e = raises (fun () -> ParquetDataset.Load(parquet, DatasetOptions(AnswerField = "gold")) |> ignore)
                Expect.equal (e.Line, e.Field) (1, "gold") "a missing column fails on row 1"
                Expect.stringContains e.Message "column 'gold': missing" "missing"
                let _, wrong = twins root "wrong" (ParquetSchema(str "problem", ListField("answer", int64Field "element"))) 10 [ """{"problem": "1+1?", "answer": [2]}""" ]
                let e = raises (fun () -> ParquetDataset.Load wrong |> ignore)
                Expect.stringContains e.Message "wrong.parquet: row 1: column 'answer': expected a string or a number, got array" "wrong type")
        }
        test "a file that is not Parquet, or is cut short, fails naming the file" {
            withTemp (fun root ->
                let notParquet = Path.Combine(root, "data.parquet")
                File.WriteAllText(notParquet, """{"problem": "1+1?", "answer": "2"}""")
                let e = raises (fun () -> Dataset.Load notParquet |> ignore)
                Expect.stringContains e.Message (notParquet + ": not a readable Parquet file") "not Parquet"
                let _, good = twins root "good" (ParquetSchema(str "problem", str "answer")) 10 [ """{"problem": "1+1?", "answer": "2"}""" ]
                let bytes = File.ReadAllBytes good
                let cut = Path.Combine(root, "cut.parquet")
                File.WriteAllBytes(cut, bytes.[.. bytes.Length - 20])
                let e = raises (fun () -> Dataset.Load cut |> ignore)
                Expect.stringContains e.Message "cut.parquet: not a readable Parquet file" "truncated")
        }
        testSequenced <| test "a Parquet file and its JSONL twin give the same training run (every non-clock metric, the samples)" {
            withTemp (fun root ->
                let records =
                    [ for i in 1 .. 12 ->
                        $$"""{"id": "p{{i}}", "problem": "{{i}}+{{i % 3}}?", "answer": "{{i + i % 3}}", "solution": "{{i}}+{{i % 3}} = \\boxed{{{i + i % 3}}}", "tags": ["add"]}""" ]
                let jsonl, parquet = twins root "add" (ParquetSchema(str "id", str "problem", str "answer", str "solution", ListField("tags", str "element"))) 5 records
                let run data name =
                    let out = Path.Combine(root, name)
                    let flags = [ "train"; "--dataset"; data; "--out"; out; "--train-fraction"; "0.5" ] @ (Popo.Tests.Cli.TrainCli.tinyFlags out |> List.skip 2)
                    let code, err = Popo.Tests.Cli.TrainCli.popoStderr flags
                    Expect.equal code 0 err
                    out
                let a, b = run jsonl "a", run parquet "b"
                Expect.isGreaterThan (metricsRows a).Length 0 "the premise: metrics were written"
                Expect.sequenceEqual (metricsRows b) (metricsRows a) "metrics.jsonl, every column but the wall-clock ones"
                Expect.sequenceEqual (File.ReadAllLines(Path.Combine(b, "samples.jsonl"))) (File.ReadAllLines(Path.Combine(a, "samples.jsonl"))) "samples.jsonl")
        }
    ]
