using System.CommandLine;
using Microsoft.Extensions.Hosting;
using Popo.Cli.Serve;
using Popo.Engine.Lora;
using Popo.Engine.Model;
using Popo.Engine.Runtime;

namespace Popo.Cli.Commands;

/// <summary>
/// `popo serve`: an OpenAI-compatible server (vLLM's routes and response shapes, SGLang's load-from-disk route) over the
/// engine's sampler. Everything is loaded and checked before it listens; then the first line on stdout is the URL (with
/// --port 0, the port the system chose), and SIGTERM or Ctrl-C stops it cleanly.
/// </summary>
public static class ServeCommand
{
    public static Command Create()
    {
        var command = new Command("serve", "Serve a model folder (and LoRA adapters) over vLLM's OpenAI-compatible HTTP API");
        var model = new Option<string>("--model") { Description = "the model folder (Hugging Face layout, or a full fine-tuning checkpoint step-N holding model/); default: --adapter's base_model_name_or_path" };
        var adapter = new Option<string>("--adapter") { Description = "a PEFT adapter folder (a LoRA checkpoint step-N) loaded at start, requested by --adapter-name" };
        var adapterName = new Option<string>("--adapter-name") { Description = "the adapter's model name in requests (default: its folder's name)" };
        var name = new Option<string>("--served-model-name") { Description = "the base model's name in requests and /v1/models (default: --model as given)" };
        var host = new Option<string>("--host") { Description = "address to listen on", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "port (0: any free port; the URL is the first line on stdout)", DefaultValueFactory = _ => 8000 };
        var device = new Option<string>("--device") { Description = "cpu | cuda | cuda:N", DefaultValueFactory = _ => "cpu" };
        var dtype = new Option<string>("--dtype") { Description = "float32 | bfloat16 | float16 | float64 (default: the folder's torch_dtype)" };
        var threads = new Option<int>("--threads") { Description = "CPU threads (0: torch's default)", DefaultValueFactory = _ => 0 };
        var maxModelLen = new Option<int?>("--max-model-len") { Description = "longest prompt + completion (default: max_position_embeddings)" };
        var mode = new Option<string>("--logprobs-mode")
        {
            Description = "raw_logprobs (vLLM's default: log softmax of the logits, before temperature) | processed_logprobs (after temperature: the sampler's own)",
            DefaultValueFactory = _ => "raw_logprobs",
        };
        foreach (var o in new Option[] { model, adapter, adapterName, name, host, port, device, dtype, threads, maxModelLen, mode }) command.Options.Add(o);
        command.SetAction(parse => CommandRunner.Run(() =>
        {
            var logprobs = parse.GetValue(mode) switch
            {
                "raw_logprobs" => LogprobsMode.RawLogprobs,
                "processed_logprobs" => LogprobsMode.ProcessedLogprobs,
                var other => throw new ConfigException($"--logprobs-mode: expected raw_logprobs or processed_logprobs, got '{other}'"),
            };
            var portNumber = parse.GetValue(port);
            if (portNumber is < 0 or > 65535) throw new ConfigException($"--port: expected an integer in [0, 65535], got {portNumber}");
            if (parse.GetValue(threads) < 0) throw new ConfigException($"--threads: expected a non-negative integer, got {parse.GetValue(threads)}");
            var adapterFolder = parse.GetValue(adapter);
            var folder = ModelFolder(parse.GetValue(model), adapterFolder);
            if (parse.GetValue(threads) > 0) TorchSharp.torch.set_num_threads(parse.GetValue(threads));
            var type = parse.GetValue(dtype) is { } d ? ModelConfig.DtypeOf(d, "--dtype") : (TorchSharp.torch.ScalarType?)null;
            using var served = new ServedModel(parse.GetValue(name) ?? folder, folder, TorchRuntime.ResolveDevice(parse.GetValue(device)!), type,
                                               parse.GetValue(maxModelLen), logprobs);
            if (!string.IsNullOrEmpty(adapterFolder))
            {
                var adapterId = parse.GetValue(adapterName) ?? new DirectoryInfo(Path.GetFullPath(adapterFolder)).Name;
                try { served.LoadAdapter(adapterId, adapterFolder); }
                catch (ApiException e) { throw new ConfigException($"--adapter {adapterFolder}: {e.Message}"); }
            }
            using var app = ServeApp.Build(served, parse.GetValue(host)!, portNumber);
            try { app.StartAsync().GetAwaiter().GetResult(); }
            catch (Exception e) when (e is IOException or InvalidOperationException)
            {
                throw new IOException($"cannot listen on {parse.GetValue(host)}:{portNumber}: {e.Message}", e);
            }
            Console.Out.WriteLine(ServeApp.Address(app));
            Console.Out.Flush();
            Console.Error.WriteLine($"popo serve: {served.Name} ({served.Root}) on {ServeApp.Address(app)}; adapters: " +
                                    $"{(served.Adapters.Count == 0 ? "none" : string.Join(", ", served.Adapters.Select(a => a.Name)))}; logprobs {parse.GetValue(mode)}; Ctrl-C stops");
            app.WaitForShutdownAsync().GetAwaiter().GetResult();
            Console.Error.WriteLine("popo serve: stopped");
            return 0;
        }));
        return command;
    }

    /// <summary>--model, a checkpoint folder's model/ inside it, or --adapter's base model when --model is omitted (as `popo eval` takes them).</summary>
    private static string ModelFolder(string? model, string? adapter)
    {
        if (string.IsNullOrEmpty(model))
        {
            if (string.IsNullOrEmpty(adapter)) throw new ConfigException("popo serve needs --model DIR (a model folder) or --adapter DIR (a PEFT adapter whose base is a folder here)");
            var (_, baseModel) = PeftAdapterConfig.Read(adapter);
            if (baseModel is null || !Directory.Exists(baseModel))
                throw new ConfigException($"--adapter: {Path.Combine(adapter, PeftAdapterConfig.FileName)} names base model '{baseModel ?? "(none)"}', which is not a model folder here; pass --model BASE");
            model = baseModel;
        }
        if (!Directory.Exists(model)) throw new ConfigException($"--model: {model}: model folder not found");
        var inner = Path.Combine(model, "model");
        return !File.Exists(Path.Combine(model, HfCheckpoint.ConfigFile)) && File.Exists(Path.Combine(inner, HfCheckpoint.ConfigFile)) ? inner : model;
    }
}
