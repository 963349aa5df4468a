using System.CommandLine;
using Popo.Engine.Checkpoints;
using Popo.Engine.Configuration;
using Popo.Engine.Model;
using Popo.Engine.Tokenizers;
using Popo.Engine.Runtime;

namespace Popo.Cli.Commands;

/// <summary>`popo init`: a randomly initialised Hugging Face model folder from a preset or config.json, with overrides.</summary>
public static class InitCommand
{
    public static Command Create()
    {
        var command = new Command("init", "Write a randomly initialised Hugging Face model folder (config.json, safetensors, tokenizer files)");
        var config = new Option<string>("--config") { Description = $"a preset ({string.Join(", ", RandomModel.Presets.Keys)}) or a config.json file", Required = true };
        var tokenizer = new Option<string>("--tokenizer") { Description = "folder with tokenizer.json (+ tokenizer_config.json), copied into the model folder", Required = true };
        var output = new Option<string>("--out") { Description = "the new model folder (must be empty or absent)", Required = true };
        var dtype = new Option<string>("--dtype") { Description = "weight dtype: float32 | bfloat16 (default: bfloat16, as the published checkpoints)", DefaultValueFactory = _ => "bfloat16" };
        var seed = new Option<int>("--seed") { Description = "seed of the random weights (default 1)", DefaultValueFactory = _ => 1 };
        var overrides = new Argument<string[]>("overrides") { Description = $"field=value overrides of config.json, e.g. num_hidden_layers=2 (fields: {string.Join(", ", RandomModel.OverridableFields)})", Arity = ArgumentArity.ZeroOrMore };
        command.Options.Add(config);
        command.Options.Add(tokenizer);
        command.Options.Add(output);
        command.Options.Add(dtype);
        command.Options.Add(seed);
        command.Arguments.Add(overrides);
        command.SetAction(parse => CommandRunner.Run(() =>
        {
            var type = parse.GetValue(dtype) switch
            {
                "float32" => TorchSharp.torch.ScalarType.Float32,
                "bfloat16" => TorchSharp.torch.ScalarType.BFloat16,
                var other => throw new ConfigException($"--dtype: expected float32 or bfloat16, got '{other}'"),
            };
            if (parse.GetValue(seed) < 0) throw new ConfigException($"--seed: expected a non-negative integer, got {parse.GetValue(seed)}");
            var (model, window, windowLayers) = RandomModel.Resolve(parse.GetValue(config)!, parse.GetValue(overrides) ?? []);
            var folder = parse.GetValue(output)!;
            // The tokenizer is checked (loaded) before anything is written; its ids must fit vocab_size.
            var tokenizerFolder = parse.GetValue(tokenizer)!;
            if (!Directory.Exists(tokenizerFolder)) throw new TokenizerFormatException($"--tokenizer: {tokenizerFolder}: folder not found");
            var loaded = TokenizerFolder.Load(tokenizerFolder);
            if (loaded.VocabSize > model.VocabSize)
                throw new ModelConfigException($"--tokenizer {tokenizerFolder}: the tokenizer has {loaded.VocabSize} ids but vocab_size is {model.VocabSize}");
            var bytes = RandomModel.Write(model, window, windowLayers, folder, type, parse.GetValue(seed), Console.Error.WriteLine);
            TokenizerFolder.Save(loaded, folder, tokenizerFolder);
            Console.Error.WriteLine($"done: {folder} ({model.NumHiddenLayers} layers, hidden {model.HiddenSize}, vocab {model.VocabSize}, {bytes / 1e9:F2} GB of weights)");
            return 0;
        }));
        return command;
    }
}
