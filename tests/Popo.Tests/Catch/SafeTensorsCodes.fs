/// The safetensors dtype codes against the format's own definition, not only against this engine's writer: a file
/// written byte by byte (as the Python safetensors library lays it out) reads back with the right values, and a
/// written file names each dtype by its standard code. A consistent swap of two codes passes every round trip.
module Popo.Tests.Catch.SafeTensorsCodes

open System
open System.IO
open System.Text
open System.Text.Json
open Expecto
open TorchSharp
open Popo.Engine.Checkpoints

let private withFile (f: string -> unit) =
    let path = Path.Combine(Path.GetTempPath(), "popo-st-" + Guid.NewGuid().ToString("N") + ".safetensors")
    try f path finally if File.Exists path then File.Delete path

/// 8-byte little-endian header length, the JSON header, then the data.
let private handWritten (path: string) (header: string) (data: byte[]) =
    let h = Encoding.UTF8.GetBytes header
    File.WriteAllBytes(path, Array.concat [ BitConverter.GetBytes(int64 h.Length); h; data ])

[<Tests>]
let tests =
    testList "catch/safetensors" [
        test "F16, BF16, F32 and I64 tensors written by hand read back as their values" {
            withFile (fun path ->
                // [1.0, 1.5] as IEEE half (0x3C00, 0x3E00), as bfloat16 (0x3F80, 0x3FC0), as float32; [7, -2] as int64
                let data = Array.concat [ [| 0x00uy; 0x3Cuy; 0x00uy; 0x3Euy |]; [| 0x80uy; 0x3Fuy; 0xC0uy; 0x3Fuy |]
                                          BitConverter.GetBytes 1.0f; BitConverter.GetBytes 1.5f; BitConverter.GetBytes 7L; BitConverter.GetBytes -2L ]
                handWritten path ("""{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]},""" +
                                  """"f":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},"i":{"dtype":"I64","shape":[2],"data_offsets":[16,32]}}""") data
                let file = SafeTensorsFile.Open path
                for name, dtype in [ "h", torch.ScalarType.Float16; "b", torch.ScalarType.BFloat16; "f", torch.ScalarType.Float32 ] do
                    use t = file.Read name
                    Expect.equal t.dtype dtype name
                    use wide = t.``to``(torch.ScalarType.Float64)
                    Expect.equal (wide.data<float>().ToArray()) [| 1.0; 1.5 |] name
                use i = file.Read "i"
                Expect.equal (i.data<int64>().ToArray()) [| 7L; -2L |] "int64")
        }

        test "a written file names each dtype by its safetensors code" {
            withFile (fun path ->
                use h = torch.ones(2L, dtype = torch.ScalarType.Float16)
                use b = torch.ones(2L, dtype = torch.ScalarType.BFloat16)
                use f = torch.ones(2L, dtype = torch.ScalarType.Float64)
                SafeTensorsFile.Write(path, [ struct ("h", h); struct ("b", b); struct ("f", f) ])
                let bytes = File.ReadAllBytes path
                let length = int (BitConverter.ToInt64(bytes, 0))
                let header = JsonDocument.Parse(Encoding.UTF8.GetString(bytes, 8, length)).RootElement
                for name, code in [ "h", "F16"; "b", "BF16"; "f", "F64" ] do
                    Expect.equal (header.GetProperty(name).GetProperty("dtype").GetString()) code name
                // bfloat16 1.0 is 0x3F80, little-endian
                let offset = header.GetProperty("b").GetProperty("data_offsets").[0].GetInt32()
                Expect.equal bytes.[8 + length + offset .. 8 + length + offset + 1] [| 0x80uy; 0x3Fuy |] "bf16 bytes")
        }
    ]
