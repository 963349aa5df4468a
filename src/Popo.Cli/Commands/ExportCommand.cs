using System.CommandLine;
using Popo.Engine.Configuration;
using Popo.Engine.Lora;
using Popo.Engine.Training;
using Popo.Engine.Runtime;

namespace Popo.Cli.Commands;

/// <summary>`popo export --merge`: a LoRA checkpoint (PEFT adapter folder) merged into its base, as a Hugging Face model folder.</summary>
public static class ExportCommand
{
    public static Command Create()
    {
        var command = new Command("export", "Merge a LoRA checkpoint's adapter into its base model: a Hugging Face model folder loadable by --model");
        var merge = new Option<bool>("--merge") { Description = "write W + s B A into the base weights (the only export there is; required, as PEFT's merge_and_unload)" };
        var checkpoint = new Option<string>("--checkpoint") { Description = "a LoRA checkpoint or PEFT adapter folder (adapter_config.json + adapter_model.safetensors)", Required = true };
        var model = new Option<string?>("--model") { Description = "the base model folder (default: the adapter's base_model_name_or_path)" };
        var output = new Option<string>("--out") { Description = "the merged model folder (must be empty or absent)", Required = true };
        command.Options.Add(merge);
        command.Options.Add(checkpoint);
        command.Options.Add(model);
        command.Options.Add(output);
        command.SetAction(parse => CommandRunner.Run(() =>
        {
            if (!parse.GetValue(merge)) throw new ConfigException("--merge: popo export writes the merged model (W + s B A); pass --merge");
            var folder = parse.GetValue(output)!;
            var basePath = MergedExport.Run(parse.GetValue(checkpoint)!, parse.GetValue(model), folder);
            Console.Error.WriteLine($"done: {folder} ({basePath} + {parse.GetValue(checkpoint)} merged)");
            return 0;
        }));
        return command;
    }
}
