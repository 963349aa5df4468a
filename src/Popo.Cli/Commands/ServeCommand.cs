using System.CommandLine;
using Microsoft.Extensions.Hosting;
using Popo.Cli.Serve;
using Popo.Engine.Lora;
using Popo.Engine.Model;
using Popo.Engine.Runtime;
using Popo.Engine.Training;

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
        var model = new Option<string>("--model") { Description = "a model folder (Hugging Face layout), a checkpoint step-N (full or LoRA) or a run folder (its newest checkpoint); default: --adapter's base_model_name_or_path" };
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
        var temperatureFactor = new Option<double>("--temperature-factor")
        {
            Description = "sample every request at this multiple of the temperature it asks for, reporting the log-probs of what was sampled " +
                          "(a deliberately mismatched server, to see a trainer's importance correction at work; default 1 = as asked)",
            DefaultValueFactory = _ => 1.0,
        };
        foreach (var o in new Option[] { model, adapter, adapterName, name, host, port, device, dtype, threads, maxModelLen, mode, temperatureFactor }) command.Options.Add(o);
        command.SetAction(parse => CommandRunner.Run(() =>
        {
            var logprobs = parse.GetValue(mode) switch
            {
                "raw_logprobs" => LogprobsMode.RawLogprobs,
                "processed_logprobs" => LogprobsMode.ProcessedLogprobs,
                var other => throw new ConfigException($"--logprobs-mode: expected raw_logprobs or processed_logprobs, got '{other}'"),
            };
            var factor = parse.GetValue(temperatureFactor);
            if (!(factor > 0 && factor <= 100)) throw new ConfigException($"--temperature-factor: expected a number in (0, 100], got {factor}");
            var portNumber = parse.GetValue(port);
            if (portNumber is < 0 or > 65535) throw new ConfigException($"--port: expected an integer in [0, 65535], got {portNumber}");
            if (parse.GetValue(threads) < 0) throw new ConfigException($"--threads: expected a non-negative integer, got {parse.GetValue(threads)}");
            var (folder, adapterFolder) = Folders(parse.GetValue(model), parse.GetValue(adapter));
            if (parse.GetValue(threads) > 0) TorchSharp.torch.set_num_threads(parse.GetValue(threads));
            var type = parse.GetValue(dtype) is { } d ? ModelConfig.DtypeOf(d, "--dtype") : (TorchSharp.torch.ScalarType?)null;
            using var served = new ServedModel(parse.GetValue(name) ?? folder, folder, TorchRuntime.ResolveDevice(parse.GetValue(device)!), type,
                                               parse.GetValue(maxModelLen), logprobs) { TemperatureFactor = factor };
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
                                    $"{(served.Adapters.Count == 0 ? "none" : string.Join(", ", served.Adapters.Select(a => a.Name)))}; logprobs {parse.GetValue(mode)}" +
                                    (factor == 1 ? "" : $"; sampling at {factor:G} x the temperature asked (--temperature-factor)") + "; Ctrl-C stops");
            app.WaitForShutdownAsync().GetAwaiter().GetResult();
            Console.Error.WriteLine("popo serve: stopped");
            return 0;
        }));
        return command;
    }

    /// <summary>
    /// The model folder and the adapter folder (or null) to serve, from what `popo eval` accepts and what a run writes: --model
    /// as a model folder, a checkpoint step-N (its model/, or a LoRA checkpoint's adapter files over their base) or a run
    /// folder (its newest step-N); without --model, --adapter's base_model_name_or_path.
    /// </summary>
    public static (string Model, string? Adapter) Folders(string? model, string? adapter)
    {
        if (string.IsNullOrEmpty(adapter)) adapter = null;
        if (string.IsNullOrEmpty(model))
            return adapter is null
                ? throw new ConfigException("popo serve needs --model DIR (a model folder) or --adapter DIR (a PEFT adapter whose base is a folder here)")
                : (BaseOf(adapter), adapter);
        if (!Directory.Exists(model)) throw new ConfigException($"--model: {model}: model folder not found");
        if (TrainingCheckpoint.Latest(model) is var (newest, _)) model = newest;                       // a run folder
        if (File.Exists(Path.Combine(model, HfCheckpoint.ConfigFile))) return (model, adapter);
        if (File.Exists(Path.Combine(model, "model", HfCheckpoint.ConfigFile))) return (Path.Combine(model, "model"), adapter);
        if (File.Exists(Path.Combine(model, PeftAdapterConfig.FileName)))                               // a LoRA checkpoint
            return adapter is null ? (BaseOf(model), model)
                : throw new ConfigException($"--model {model} is a LoRA checkpoint and --adapter {adapter} is given too: serve one of them");
        throw new ConfigException($"--model: {model} holds no {HfCheckpoint.ConfigFile}, model/{HfCheckpoint.ConfigFile} or {PeftAdapterConfig.FileName}");
    }

    private static string BaseOf(string adapter)
    {
        var (_, baseModel) = PeftAdapterConfig.Read(adapter);
        if (baseModel is null || !Directory.Exists(baseModel))
            throw new ConfigException($"{Path.Combine(adapter, PeftAdapterConfig.FileName)} names base model '{baseModel ?? "(none)"}', which is not a model folder here; pass --model BASE");
        return baseModel;
    }
}
