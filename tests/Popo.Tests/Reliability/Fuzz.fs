/// The safetensors parser under fuzzing (issue 10): random files and mutations of valid ones (header
/// length, offsets, overlaps, dtypes, shapes, bit flips, truncation, trailing bytes) never escape as
/// anything but a CheckpointFormatException, never allocate beyond the file's size, and when they load,
/// every tensor holds exactly the bytes its header range names in the file.
module Popo.Tests.Reliability.Fuzz

open System
open System.IO
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open Popo.Engine.Checkpoints
open Popo.Tests.Reliability.Harness

/// A header entry as the writer (or an attacker) states it.
type Entry = { Name: string; Dtype: string; Shape: int64 list; Begin: int64; End: int64 }

let private sizes = Map [ "F64", 8L; "F32", 4L; "F16", 2L; "BF16", 2L; "I64", 8L; "I32", 4L; "I16", 2L; "I8", 1L; "U8", 1L; "BOOL", 1L ]

let private headerJson (entries: Entry list) (metadata: bool) =
    let entry e =
        let shape = String.Join(",", e.Shape)
        $"\"{e.Name}\":{{\"dtype\":\"{e.Dtype}\",\"shape\":[{shape}],\"data_offsets\":[{e.Begin},{e.End}]}}"
    let parts = (if metadata then [ "\"__metadata__\":{\"format\":\"pt\"}" ] else []) @ List.map entry entries
    "{" + String.Join(",", parts) + "}"

/// 8-byte little-endian header length, the header, the data section.
let private fileBytes (headerLength: uint64 option) (header: byte[]) (data: byte[]) =
    Array.concat [ BitConverter.GetBytes(defaultArg headerLength (uint64 header.Length)); header; data ]

/// A valid file: 0-4 tensors of random dtypes and shapes (0-3 dims of 0-4) tiling random data bytes.
let private validFile =
    gen {
        let! n = Gen.choose (0, 4)
        let! specs =
            Gen.listOfLength n (Gen.zip (Gen.elements (List.ofSeq sizes.Keys)) (Gen.choose (0, 3) |> Gen.bind (fun d -> Gen.listOfLength d (Gen.choose (0, 4)))))
        let entries, total =
            specs |> List.indexed |> List.mapFold (fun offset (i, (dtype, shape)) ->
                let bytes = (shape |> List.fold (fun a d -> a * int64 d) 1L) * sizes.[dtype]
                { Name = $"t{i}"; Dtype = dtype; Shape = List.map int64 shape; Begin = offset; End = offset + bytes }, offset + bytes) 0L
        let! data = Gen.arrayOfLength (int total) (Gen.choose (0, 255) |> Gen.map byte)
        let! metadata = Gen.elements [ true; false ]
        return entries, data, metadata
    }

/// Numbers an attacker would try: edges of the file, negatives, huge values, values past int64 in JSON.
let private hostileInt =
    Gen.oneof [ Gen.choose (-8, 300) |> Gen.map int64; Gen.elements [ -1L; Int64.MaxValue; Int64.MinValue; 1L <<< 40; 1L <<< 62; (1L <<< 31) - 1L ] ]

type private Mutation =
    | Offsets of index: int * b: int64 * e: int64
    | OverlapPrevious of index: int
    | Dtype of index: int * code: string
    | Shape of index: int * dims: int64 list
    | HeaderLength of uint64
    | FlipBits of (int * int) list
    | Truncate of keep: int
    | Append of byte[]
    | DropEntry of index: int

let private mutation =
    Gen.oneof [
        Gen.map3 (fun i b e -> Offsets(i, b, e)) (Gen.choose (0, 3)) hostileInt hostileInt
        Gen.choose (1, 3) |> Gen.map OverlapPrevious
        Gen.map2 (fun i c -> Dtype(i, c)) (Gen.choose (0, 3)) (Gen.elements [ "F32"; "F64"; "BF16"; "I8"; "BOOL"; "F128"; "f32"; ""; "U64"; "F8_E4M3" ])
        Gen.map2 (fun i d -> Shape(i, d)) (Gen.choose (0, 3)) (Gen.listOf hostileInt |> Gen.map (List.truncate 4))
        Gen.oneof [ hostileInt |> Gen.map uint64; Gen.elements [ UInt64.MaxValue; 1UL <<< 63; 0UL; 1UL; 7UL ] ] |> Gen.map HeaderLength
        Gen.listOf (Gen.zip (Gen.choose (0, Int32.MaxValue)) (Gen.choose (0, 7))) |> Gen.map (List.truncate 8 >> FlipBits)
        Gen.choose (0, Int32.MaxValue) |> Gen.map Truncate
        Gen.arrayOf (Gen.choose (0, 255) |> Gen.map byte) |> Gen.map (Array.truncate 16 >> Append)
        Gen.choose (0, 3) |> Gen.map DropEntry
    ]

let private mutate (entries: Entry list) (data: byte[]) (metadata: bool) (mutations: Mutation list) =
    let at i f (es: Entry list) = if es.IsEmpty then es else es |> List.mapi (fun j e -> if j = i % es.Length then f e else e)
    let entries =
        mutations |> List.fold (fun es m ->
            match m with
            | Offsets(i, b, e) -> at i (fun x -> { x with Begin = b; End = e }) es
            | OverlapPrevious i when es.Length >= 2 ->
                let k = max 1 (i % es.Length)
                es |> List.mapi (fun j x -> if j = k then { x with Begin = max 0L (es.[k - 1].End - 1L) } else x)
            | Dtype(i, c) -> at i (fun x -> { x with Dtype = c }) es
            | Shape(i, d) -> at i (fun x -> { x with Shape = d }) es
            | DropEntry i when not es.IsEmpty -> es |> List.removeAt (i % es.Length)
            | _ -> es) entries
    let header = Encoding.UTF8.GetBytes(headerJson entries metadata)
    let headerLength = mutations |> List.tryPick (function HeaderLength n -> Some n | _ -> None)
    let mutable bytes = fileBytes headerLength header data
    for m in mutations do
        match m with
        | FlipBits flips when bytes.Length > 0 ->
            for (p, bit) in flips do
                let p = p % bytes.Length
                bytes.[p] <- bytes.[p] ^^^ (1uy <<< bit)
        | Truncate keep -> bytes <- bytes.[.. keep % (bytes.Length + 1) - 1]
        | Append extra -> bytes <- Array.append bytes extra
        | _ -> ()
    bytes

/// Opens and reads every tensor. Ok: the load is correct (each tensor's bytes are the file's bytes at its
/// header range, its size within the file). Error: a CheckpointFormatException naming the file. Anything
/// else escapes and fails the property. Managed allocation during Open must stay within 4x the file plus
/// 256 KiB (JSON parsing and the error message), never scale with a claimed length.
/// Whether the little-endian bytes of a float tensor hold a NaN or an infinity: an element whose exponent bits are all ones.
let private nonFinite (dtype: TorchSharp.torch.ScalarType) (bytes: byte[]) =
    let exponentAllOnes (size: int) (mask: uint64) =
        bytes |> Array.chunkBySize size |> Array.exists (fun c ->
            let v = c |> Array.rev |> Array.fold (fun acc b -> (acc <<< 8) ||| uint64 b) 0UL
            v &&& mask = mask)
    match dtype with
    | TorchSharp.torch.ScalarType.Float64 -> exponentAllOnes 8 0x7FF0000000000000UL
    | TorchSharp.torch.ScalarType.Float32 -> exponentAllOnes 4 0x7F800000UL
    | TorchSharp.torch.ScalarType.Float16 -> exponentAllOnes 2 0x7C00UL
    | TorchSharp.torch.ScalarType.BFloat16 -> exponentAllOnes 2 0x7F80UL
    | _ -> false

let private openChecked (bytes: byte[]) =
    let dir = tempRoot ()
    try
        let path = Path.Combine(dir, "fuzz.safetensors")
        File.WriteAllBytes(path, bytes)
        let before = GC.GetAllocatedBytesForCurrentThread()
        let opened = try Ok(SafeTensorsFile.Open path) with :? CheckpointFormatException as e -> Error e.Message
        let allocated = GC.GetAllocatedBytesForCurrentThread() - before
        let bounded = allocated <= 4L * int64 bytes.Length + 262_144L
        match opened with
        | Error message -> bounded && message.StartsWith path, "error"
        | Ok file ->
            let dataStart = 8 + int (BitConverter.ToUInt64(bytes, 0))
            let correct =
                file.Tensors.Values |> Seq.forall (fun e ->
                    let expected = bytes.[dataStart + int e.Begin .. dataStart + int e.End - 1]
                    // A float tensor holding NaN or an infinity is refused when read (issue 35), naming it; only then.
                    if nonFinite e.Dtype expected then
                        try (file.Read e.Name).Dispose(); false
                        with :? CheckpointFormatException as x -> x.Message.StartsWith path && x.Message.Contains $"'{e.Name}'"
                    else
                        use t = file.Read e.Name
                        let read = let b = Array.zeroCreate<byte> (int (t.numel() * t.element_size())) in (use s = new MemoryStream(b) in t.WriteBytesToStream s); b
                        read = expected && t.numel() * t.element_size() = e.ByteCount && e.ByteCount <= int64 bytes.Length)
            bounded && correct, "load"
    finally Directory.Delete(dir, true)

let private config = { FsCheckConfig.defaultConfig with maxTest = 200 }

let private property name (g: Gen<'a>) (body: 'a -> Property) = testPropertyWithConfig config name (Prop.forAll (Arb.fromGen g) body)

[<Tests>]
let tests =
    testList "reliability/fuzz" [
        property "random bytes end in a CheckpointFormatException or a correct load" (Gen.oneof [
                Gen.arrayOf (Gen.choose (0, 255) |> Gen.map byte)
                // a plausible length prefix, so the JSON parser sees the random bytes
                Gen.arrayOf (Gen.choose (0, 255) |> Gen.map byte) |> Gen.map (fun b -> Array.append (BitConverter.GetBytes(uint64 b.Length)) b)
                Gen.elements [ "{}"; "{\"a\":1}"; "[]"; "{\"__metadata__\":[]}"; "{\"a\":{}}"; "null"; "\"x\""; "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[\"0\",4]}}" ]
                |> Gen.map (fun h -> let b = Encoding.UTF8.GetBytes h in Array.append (BitConverter.GetBytes(uint64 b.Length)) b) ]) <|
            fun bytes -> let ok, kind = openChecked bytes in ok |> Prop.classify true kind

        property "mutated valid files end in a CheckpointFormatException or a correct load"
            (Gen.zip validFile (Gen.listOf mutation |> Gen.map (List.truncate 4) |> Gen.filter (not << List.isEmpty))) <|
            fun ((entries, data, metadata), mutations) ->
                let ok, kind = openChecked (mutate entries data metadata mutations)
                ok |> Prop.classify true kind

        property "a valid file loads, and bit flips in its data section load as the flipped bytes (or, making a float non-finite, are refused naming the tensor)"
            (Gen.zip validFile (Gen.listOf (Gen.zip (Gen.choose (0, Int32.MaxValue)) (Gen.choose (0, 7))))) <|
            fun ((entries, data, metadata), flips) ->
                let flipped = Array.copy data
                if data.Length > 0 then
                    for (p, bit) in flips do flipped.[p % data.Length] <- flipped.[p % data.Length] ^^^ (1uy <<< bit)
                let ok, kind = openChecked (mutate entries flipped metadata [])
                Prop.ofTestable (ok && kind = "load")

        testCase "a header length of 2^63 is refused without allocating it" <| fun () ->
            let ok, kind = openChecked (fileBytes (Some(1UL <<< 63)) (Encoding.UTF8.GetBytes "{}") [||])
            Expect.isTrue ok "bounded allocation, message names the file"
            Expect.equal kind "error" "refused"
    ]
