using Popo.Engine.Checkpoints;
using Popo.Engine.Configuration;
using Popo.Engine.Model;
using Popo.Engine.Tokenizers;
using static TorchSharp.torch;

namespace Popo.Engine.Training;

/// <summary>Builds the policy and its tokenizer: the built-in small model, or a Hugging Face folder.</summary>
internal static class ModelFactory
{
    /// <summary>max_position_embeddings of the built-in model.</summary>
    public const int BuiltInContext = 1024;

    public static ScalarType Dtype(TrainConfig c) => ModelConfig.DtypeOf(c.Dtype, "key 'dtype'");

    public static (Qwen2ForCausalLM Model, ITokenizer Tokenizer) Create(TrainConfig c, Device device)
    {
        if (!string.IsNullOrEmpty(c.Model)) return Load(c.Model, device, Dtype(c));
        var tokenizer = new CharTokenizer();
        var model = new Qwen2ForCausalLM(BuiltInConfig(c, tokenizer), device, Dtype(c));
        model.InitializeWeights(c.Seed);
        return (model, tokenizer);
    }

    /// <summary>The built-in model's config.json fields from the configuration keys.</summary>
    public static ModelConfig BuiltInConfig(TrainConfig c, ITokenizer tokenizer) =>
        new()
        {
            VocabSize = tokenizer.VocabSize,
            HiddenSize = c.HiddenSize,
            IntermediateSize = c.IntermediateSize,
            NumHiddenLayers = c.Layers,
            NumAttentionHeads = c.Heads,
            NumKeyValueHeads = c.KvHeads,
            MaxPositionEmbeddings = BuiltInContext,
            TieWordEmbeddings = true,
            BosTokenId = CharTokenizer.Bos,
            EosTokenId = CharTokenizer.Eos,
            TorchDtype = c.Dtype,
        };

    public static (Qwen2ForCausalLM Model, ITokenizer Tokenizer) Load(string folder, Device device, ScalarType? dtype)
    {
        if (!Directory.Exists(folder)) throw new CheckpointFormatException($"{folder}: model folder not found");
        var tokenizer = TokenizerFolder.Load(folder);
        var model = HfCheckpoint.Load(folder, device, dtype);
        if (tokenizer.VocabSize > model.Config.VocabSize)
        {
            model.Dispose();
            throw new CheckpointFormatException($"{folder}: the tokenizer has {tokenizer.VocabSize} ids but config.json's vocab_size is {model.Config.VocabSize}");
        }
        return (model, tokenizer);
    }

    /// <summary>
    /// Saves model + tokenizer as a folder that `--model` (and transformers, for HF tokenizers) can load, in the
    /// model's own dtype (config.json's torch_dtype: a bf16 model stays bf16 whatever precision it trains in).
    /// </summary>
    public static void Save(Qwen2ForCausalLM model, ITokenizer tokenizer, string folder, string? tokenizerSource)
    {
        HfCheckpoint.Save(model, folder, ModelConfig.DtypeOf(model.Config.TorchDtype, "config.json of the model"), HfCheckpoint.DefaultShardBytes);
        TokenizerFolder.Save(tokenizer, folder, tokenizerSource);
    }
}
