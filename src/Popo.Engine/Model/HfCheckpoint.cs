using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

using Popo.Engine.Checkpoints;

namespace Popo.Engine.Model;

/// <summary>
/// A model folder in the Hugging Face layout: config.json plus model.safetensors, or shards
/// model-0000i-of-0000n.safetensors listed by model.safetensors.index.json. Pickled checkpoints
/// (pytorch_model.bin, *.pt) are refused, never loaded. Every file is written atomically.
/// </summary>
internal static class HfCheckpoint
{
    public const string ConfigFile = "config.json";
    public const string SingleFile = "model.safetensors";
    public const string IndexFile = "model.safetensors.index.json";

    /// <summary>transformers' default max_shard_size for save_pretrained ("5GB", decimal).</summary>
    public const long DefaultShardBytes = 5_000_000_000;

    /// <summary>
    /// Saves config + weights. Tensors are stored in <paramref name="dtype"/> (default: the model's dtype, which
    /// config.json's torch_dtype records), each converted only when its turn to be written comes. With
    /// <paramref name="maxShardBytes"/> the weights are split into shards of at most that size (a single larger
    /// tensor gets its own shard), indexed like transformers does.
    /// </summary>
    public static void Save(Qwen2ForCausalLM model, string folder, ScalarType? dtype = null, long? maxShardBytes = null)
    {
        var storeAs = dtype ?? model.Dtype;
        var config = model.Config with { TorchDtype = ModelConfig.DtypeName(storeAs) };
        var tensors = model.NamedParameters()
            .Select(p => new PendingTensor(p.Name, storeAs, p.Parameter.shape, () => p.Parameter.detach().to(storeAs)))
            .ToList();
        SaveTensors(folder, config, tensors, maxShardBytes);
    }

    /// <summary>
    /// Writes config.json and the given tensors as model.safetensors or, above <paramref name="maxShardBytes"/>,
    /// as shards model-0000i-of-0000n.safetensors with model.safetensors.index.json; removes stale weight files.
    /// </summary>
    public static void SaveTensors(string folder, ModelConfig config, IReadOnlyList<PendingTensor> tensors, long? maxShardBytes)
    {
        Directory.CreateDirectory(folder);
        var ordered = tensors.OrderBy(p => p.Name, StringComparer.Ordinal).ToList();
        var metadata = new Dictionary<string, string> { ["format"] = "pt" };

        var shards = new List<List<PendingTensor>>();
        if (maxShardBytes is long limit)
        {
            long size = 0;
            foreach (var t in ordered)
            {
                if (shards.Count == 0 || (size + t.Bytes > limit && size > 0))
                {
                    shards.Add([]);
                    size = 0;
                }
                shards[^1].Add(t);
                size += t.Bytes;
            }
        }

        var oldShards = ShardFiles(folder);
        if (shards.Count <= 1)
        {
            SafeTensorsFile.Write(Path.Combine(folder, SingleFile), ordered, metadata);
            Delete(folder, IndexFile);
            foreach (var f in oldShards) Delete(folder, f);
        }
        else
        {
            var weightMap = new JsonObject();
            var names = new List<string>();
            for (var i = 0; i < shards.Count; i++)
            {
                var file = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
                names.Add(file);
                SafeTensorsFile.Write(Path.Combine(folder, file), shards[i], metadata);
                foreach (var t in shards[i]) weightMap[t.Name] = file;
            }
            var total = ordered.Sum(t => t.Bytes);
            var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = total }, ["weight_map"] = weightMap };
            AtomicFile.WriteAllText(Path.Combine(folder, IndexFile), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            Delete(folder, SingleFile);
            foreach (var f in oldShards.Except(names)) Delete(folder, f);
        }
        config.Save(Path.Combine(folder, ConfigFile));
    }

    /// <summary>Loads config.json and the weights into a new model on <paramref name="device"/> in <paramref name="dtype"/> (default: config's torch_dtype).</summary>
    public static Qwen2ForCausalLM Load(string folder, Device device, ScalarType? dtype = null)
    {
        var configPath = Path.Combine(folder, ConfigFile);
        if (!File.Exists(configPath)) throw new CheckpointFormatException($"{configPath}: file not found (not a Hugging Face model folder)");
        var config = ModelConfig.Load(configPath);
        var model = new Qwen2ForCausalLM(config, device, dtype ?? ModelConfig.DtypeOf(config.TorchDtype, configPath));
        try
        {
            LoadWeights(model, folder);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return model;
    }

    /// <summary>
    /// Validates a model folder without loading a weight: config.json and the header of every weight file
    /// (ranges, float dtypes, the index). Throws as <see cref="Load"/> would; returns the config.
    /// </summary>
    public static ModelConfig Check(string folder)
    {
        var config = ModelConfig.Load(Path.Combine(folder, ConfigFile));
        foreach (var (file, _) in WeightSources(folder))
            foreach (var entry in SafeTensorsFile.Open(file).Tensors.Values)
                NeedFloat(file, entry);
        return config;
    }

    /// <summary>
    /// Reads every weight of a model folder once and drops it: a NaN or infinite value is refused naming the file and
    /// tensor (<see cref="SafeTensorsFile.Read"/>). The preflight runs it so that such a folder is refused before a run
    /// makes its output folder; one pass over the files, a tensor at a time.
    /// </summary>
    public static void CheckValues(string folder)
    {
        foreach (var (file, _) in WeightSources(folder))
        {
            var st = SafeTensorsFile.Open(file);
            foreach (var name in st.Tensors.Keys) st.Read(name).Dispose();
        }
    }

    private static void NeedFloat(string file, SafeTensorEntry entry)
    {
        if (!SafeTensorsDtypes.IsFloat(entry.Dtype))
            throw new CheckpointFormatException($"{file}: tensor '{entry.Name}' has dtype {SafeTensorsDtypes.Code(entry.Dtype)}; model weights must be F64, F32, F16 or BF16");
    }

    /// <summary>
    /// Copies the weights of a model folder into <paramref name="model"/>. Throws <see cref="CheckpointFormatException"/>
    /// naming the file and tensor for unknown or missing tensors, shape mismatches, non-float dtypes and any
    /// malformed file.
    /// </summary>
    public static void LoadWeights(Qwen2ForCausalLM model, string folder)
    {
        var sources = WeightSources(folder);
        var parameters = model.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter);
        var loaded = new HashSet<string>(StringComparer.Ordinal);
        Tensor? tiedHead = null;
        string tiedHeadFile = "";
        using var noGrad = torch.no_grad();
        try
        {
            foreach (var (file, expected) in sources)
            {
                var st = SafeTensorsFile.Open(file);
                if (expected is not null)
                {
                    foreach (var name in expected.Where(n => !st.Tensors.ContainsKey(n)))
                        throw new CheckpointFormatException($"{file}: tensor '{name}' is listed in {IndexFile} but missing from this file");
                    foreach (var name in st.Tensors.Keys.Where(n => !expected.Contains(n)))
                        throw new CheckpointFormatException($"{file}: tensor '{name}' is not listed for this file in {IndexFile}");
                }
                foreach (var entry in st.Tensors.Values)
                {
                    var isTiedHead = model.Config.TieWordEmbeddings && entry.Name == "lm_head.weight";
                    if (!parameters.TryGetValue(entry.Name, out var target) && !isTiedHead)
                        throw new CheckpointFormatException(
                            $"{file}: unknown tensor '{entry.Name}' (a Qwen2 model with this config.json has no such parameter)");
                    NeedFloat(file, entry);
                    var expectedShape = isTiedHead ? parameters["model.embed_tokens.weight"].shape : target!.shape;
                    if (!entry.Shape.SequenceEqual(expectedShape))
                        throw new CheckpointFormatException(
                            $"{file}: tensor '{entry.Name}' has shape [{string.Join(", ", entry.Shape)}], config.json implies [{string.Join(", ", expectedShape)}]");
                    if (!loaded.Add(entry.Name)) throw new CheckpointFormatException($"{file}: tensor '{entry.Name}' appears in more than one file");
                    using var data = st.Read(entry.Name);
                    if (isTiedHead)
                    {
                        tiedHead = data.to(ScalarType.Float64, copy: true).DetachFromDisposeScope();
                        tiedHeadFile = file;
                    }
                    else target!.copy_(data);
                }
            }
            var missing = parameters.Keys.Where(n => !loaded.Contains(n)).OrderBy(n => n, StringComparer.Ordinal).ToList();
            if (missing.Count > 0)
                throw new CheckpointFormatException(
                    $"{folder}: missing tensor{(missing.Count > 1 ? "s" : "")} {string.Join(", ", missing.Select(n => $"'{n}'"))}");
            if (tiedHead is not null)
            {
                // A tied checkpoint may carry a copy of the embedding as lm_head; it must be that copy.
                using var embed = parameters["model.embed_tokens.weight"].detach().to(ScalarType.Float64, torch.CPU);
                if (!embed.allclose(tiedHead, rtol: 1e-3, atol: 1e-6))
                    throw new CheckpointFormatException(
                        $"{tiedHeadFile}: tensor 'lm_head.weight' differs from 'model.embed_tokens.weight' but config.json has tie_word_embeddings = true");
            }
        }
        finally
        {
            tiedHead?.Dispose();
        }
    }

    /// <summary>The weight files of a folder and, for shards, the tensor names the index assigns each.</summary>
    private static List<(string File, HashSet<string>? Names)> WeightSources(string folder)
    {
        var single = Path.Combine(folder, SingleFile);
        var index = Path.Combine(folder, IndexFile);
        if (File.Exists(single)) return [(single, null)];
        if (File.Exists(index)) return ReadIndex(folder, index);
        var pickled = new[] { "pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth" }
            .FirstOrDefault(f => File.Exists(Path.Combine(folder, f)));
        throw new CheckpointFormatException(pickled is not null
            ? $"{Path.Combine(folder, pickled)}: pickled PyTorch checkpoints are never loaded (they can run arbitrary code); convert to safetensors"
            : $"{folder}: no {SingleFile} or {IndexFile}");
    }

    private static List<(string File, HashSet<string>? Names)> ReadIndex(string folder, string index)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(index));
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException($"{index}: not valid JSON ({e.Message})");
        }
        if (root?["weight_map"] is not JsonObject map)
            throw new CheckpointFormatException($"{index}: missing object field 'weight_map'");
        var byFile = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var (name, value) in map)
        {
            if (value is not JsonValue v || !v.TryGetValue<string>(out var file))
                throw new CheckpointFormatException($"{index}: weight_map entry '{name}' must be a file name string");
            if (file != Path.GetFileName(file) || file is "." or "..")
                throw new CheckpointFormatException($"{index}: weight_map entry '{name}' points outside the folder ('{file}')");
            var path = Path.Combine(folder, file);
            if (!File.Exists(path)) throw new CheckpointFormatException($"{path}: shard named by {index} for tensor '{name}' not found");
            if (!byFile.TryGetValue(path, out var names)) byFile[path] = names = new HashSet<string>(StringComparer.Ordinal);
            names.Add(name);
        }
        return byFile.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => (kv.Key, (HashSet<string>?)kv.Value)).ToList();
    }

    private static List<string> ShardFiles(string folder) =>
        Directory.Exists(folder)
            ? Directory.EnumerateFiles(folder, "model-*-of-*.safetensors").Select(Path.GetFileName).OfType<string>().ToList()
            : [];

    private static void Delete(string folder, string file)
    {
        var path = Path.Combine(folder, file);
        if (File.Exists(path)) File.Delete(path);
    }
}
