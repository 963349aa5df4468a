using System.Diagnostics;
using System.Text.Json;
using Popo.Engine.Data;
using Popo.Engine.Configuration;
using Popo.Engine.Lora;
using Popo.Engine.Model;
using Popo.Engine.Objectives;
using Popo.Engine.Policy;
using Popo.Engine.Rewards;
using Popo.Engine.Rollout;
using Popo.Engine.Runtime;
using Popo.Engine.Tasks;
using Popo.Engine.Tokenizers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Popo.Engine.Training;

/// <summary>The results a finished run writes to summary.json. <paramref name="FinalAdapter"/>: the final checkpoint holds a PEFT adapter (a LoRA run), not model/.</summary>
public sealed record RunSummary(string Algo, int Steps, long Rollouts, double WallTime, EvalResult Warmup, EvalResult Final, string FinalCheckpoint, bool FinalAdapter = false);

/// <summary>Training stopped because too many steps had a non-finite loss or gradient.</summary>
public sealed class TrainingDivergedException(string message) : Exception(message);

/// <summary>
/// The RL loop, and nothing else: rollout -> verify -> weights/advantages -> micro-batch losses ->
/// AdamW -> EMA -> metrics/checkpoint. Every piece of math lives in Objectives/, every piece of I/O in
/// the classes it calls.
/// </summary>
public sealed class Trainer
{
    /// <summary>The columns the loop itself writes, whatever the algorithm: those before the objective's columns, then those after.</summary>
    private static readonly string[] LoopColumnsBefore = ["step", "rollouts", "wall_time", "lr", "reward_mean", "reward_std", "pass_rate"];

    private static readonly string[] LoopColumnsAfter =
    [
        "completion_len_mean", "completion_len_max", "grad_norm", "tokens_per_s", "step_time", "rollout_time", "update_time",
        "skipped_update", "non_finite", "eval_pass1", "eval_passk", "eval_greedy", .. Popo.MathVerify.RouteShares.Columns, "verifier_errors",
        "reward_errors", "eval_reward_mean", "server_tokens_per_s", "rollout_staleness", .. ImportanceCorrection.Columns,
    ];

    private static readonly string[] LoopColumns = [.. LoopColumnsBefore, .. LoopColumnsAfter];

    /// <summary>Columns every metrics row has (NaN where a step or algorithm has no value): the loop's and every registered objective's.</summary>
    public static readonly string[] Columns = [.. LoopColumnsBefore, .. ObjectiveRegistry.Columns, .. LoopColumnsAfter];

    /// <summary>The columns of a run whose reward functions add <paramref name="rewardColumns"/> (rewards/NAME/mean and /std, <see cref="RewardSet.Columns"/>): <see cref="Columns"/> then those.</summary>
    public static string[] ColumnsFor(IReadOnlyList<string> rewardColumns) => [.. Columns, .. rewardColumns];

    /// <summary>
    /// The row of one step; a value that neither the loop, nor <paramref name="algorithm"/>, nor the run's reward functions
    /// (<paramref name="rewardColumns"/>) declared is an error, not a silent drop.
    /// </summary>
    internal static Dictionary<string, double> Row(IReadOnlyDictionary<string, double> values, Algorithm algorithm, IReadOnlyList<string>? rewardColumns = null)
    {
        rewardColumns ??= [];
        if (values.Keys.FirstOrDefault(k => !LoopColumns.Contains(k) && !algorithm.Columns.Contains(k) && !rewardColumns.Contains(k)) is { } undeclared)
            throw new InvalidOperationException($"metric '{undeclared}' is not declared by the loop, by algorithm '{algorithm.Name}' (Algorithm.Columns) or by the run's reward functions");
        return ColumnsFor(rewardColumns).ToDictionary(c => c, c => values.GetValueOrDefault(c, double.NaN));
    }

    /// <summary>
    /// The columns that measure the clock, not the computation. Every other column is deterministic: two runs with the
    /// same configuration and seed (or a run and its resumed copy) write the same values, bit for bit.
    /// </summary>
    public static readonly IReadOnlySet<string> WallClockColumns = new HashSet<string>(StringComparer.Ordinal)
        { "wall_time", "tokens_per_s", "step_time", "rollout_time", "update_time", "server_tokens_per_s" };

    /// <summary>A run without held-out evaluation (eval_problems = 0) records its results as NaN.</summary>
    internal static readonly JsonSerializerOptions Json = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    private readonly TrainConfig config;
    private readonly ITrainingObserver observer;
    private readonly IReadOnlyList<Popo.Rewards.IRewardFunction> rewardFunctions;

    internal Trainer(TrainConfig config, ITrainingObserver observer, IReadOnlyList<Popo.Rewards.IRewardFunction>? rewardFunctions = null)
    {
        this.config = config;
        this.observer = observer;
        this.rewardFunctions = rewardFunctions ?? [];
    }

    /// <summary>
    /// Starts a run in a new (or empty) output folder. <paramref name="rewardFunctions"/>: reward functions given as
    /// objects by a program that calls Popo as a library; they score after those reward_funcs names, and with reward_funcs
    /// empty they replace the task's own check (list accuracy in reward_funcs to keep it). reward_weights covers
    /// reward_funcs, or reward_funcs then the objects (an object without a weight gets 1).
    /// </summary>
    public static RunSummary Start(TrainConfig config, ITrainingObserver observer, IReadOnlyList<Popo.Rewards.IRewardFunction>? rewardFunctions = null)
    {
        var plan = Preflight(config, observer.Log, rewardFunctions);
        using (plan.Rewards)
        {
            RunFolder.CreateNew(config);
            return new Trainer(config, observer, rewardFunctions).Run(plan);
        }
    }

    /// <summary>Continues the run in <paramref name="folder"/> from its last complete checkpoint (a library caller passes the same reward functions again).</summary>
    public static RunSummary Resume(string folder, ITrainingObserver observer, IReadOnlyList<(string Key, string Value)>? changes = null,
                                    IReadOnlyList<Popo.Rewards.IRewardFunction>? rewardFunctions = null)
    {
        var config = RunFolder.ReadConfig(folder);
        if (changes is { Count: > 0 }) config = ResumeChanges.Apply(config, changes);
        var plan = Preflight(config, observer.Log, rewardFunctions);
        using (plan.Rewards)
        {
            if (changes is { Count: > 0 }) RunFolder.Rewrite(config);
            // a checkpoint or file half-written when the run died
            AtomicFolder.CleanLeftovers(folder);
            AtomicFolder.CleanLeftovers(Path.Combine(folder, "checkpoints"));
            return new Trainer(config, observer, rewardFunctions).Run(plan);
        }
    }

    /// <summary>What the preflight found: the task (overlong problems dropped), prompt truncation, the memory estimate and the memory available before the model loaded, the reward functions (loaded; the caller disposes them).</summary>
    internal sealed record Plan(ITask Task, int? TruncateTo, MemoryEstimate Memory, long? Available, RewardSet Rewards);

    /// <summary>
    /// Everything that can be checked before the output folder is touched: device, model folder (config.json,
    /// every weight file's header, tokenizer), task/dataset, every prompt against the model's context, and the reward
    /// functions (a spec that cannot be loaded stops here: <see cref="RewardLoadException"/>). <paramref name="rewardFunctions"/>: a library caller's (see <see cref="Start"/>).
    /// </summary>
    internal static Plan Preflight(TrainConfig config, Action<string> log, IReadOnlyList<Popo.Rewards.IRewardFunction>? rewardFunctions = null)
    {
        TorchRuntime.ResolveDevice(config.Device);
        ITokenizer tokenizer;
        int context;
        string contextSource;
        ModelConfig modelConfig;
        if (!string.IsNullOrEmpty(config.Model))
        {
            var configFile = Path.Combine(config.Model, HfCheckpoint.ConfigFile);
            if (!File.Exists(configFile))
                throw new Checkpoints.CheckpointFormatException($"{config.Model}: not a model folder (no {HfCheckpoint.ConfigFile})");
            modelConfig = HfCheckpoint.Check(config.Model);
            context = modelConfig.MaxPositionEmbeddings;
            contextSource = $"max_position_embeddings in {configFile}";
            tokenizer = TokenizerFolder.Load(config.Model);
        }
        else
        {
            tokenizer = new CharTokenizer();
            context = ModelFactory.BuiltInContext;
            contextSource = "the built-in model";
            modelConfig = ModelFactory.BuiltInConfig(config, tokenizer);
        }
        // Values too: a NaN or infinite weight or adapter is refused here, not after the folder exists.
        if (!string.IsNullOrEmpty(config.Model)) HfCheckpoint.CheckValues(config.Model);
        if (!string.IsNullOrEmpty(config.Adapter) && config.ToLoraSettings() is { } lora) PeftAdapterFolder.Check(config.Adapter, lora, modelConfig);
        var task = TaskFactory.Create(config, RewardSet.NeedsAnswer(config.RewardFuncs, rewardFunctions?.Count ?? 0));
        if (task is DatasetTask { Data.SkippedCount: > 0 } data)
            log($"{data.Data.Path}: skipped {data.Data.SkippedCount} malformed line{(data.Data.SkippedCount == 1 ? "" : "s")} (skip_bad_lines); the first: {data.Data.Skipped[0].Message}");
        var limit = PromptLimit.Apply(task, RunOptions.Prompts(config, tokenizer), config, context, contextSource);
        if (limit.Report(config) is { } report) log(report);
        if (config.Bf16 && MatmulRate.Bf16Warning(TorchRuntime.ResolveDevice(config.Device)) is { } slow) log(slow);
        var memory = MemoryEstimate.Of(MemoryEstimate.InputsOf(config, modelConfig, limit.LongestPrompt));
        log(memory.Describe());
        var available = MemoryEstimate.AvailableBytes();
        memory.Check(config, modelConfig, limit.LongestPrompt, available, log);
        var rewards = RewardSet.Create(config, limit.Task, rewardFunctions, Environment.CurrentDirectory, log);
        return new Plan(limit.Task, limit.TruncateTo, memory, available, rewards);
    }

    /// <summary>
    /// The host heap's setting (Runtime/NativeHeap.cs), logged with auto's reason. The budget is the preflight's: its
    /// estimate (which counts the weights) against the memory available before the model loaded. On another device
    /// the estimate is of that device's memory, so auto stays lean.
    /// </summary>
    private NativeHeap.Setting HeapSetting(Qwen2ForCausalLM model, Device device, Plan plan)
    {
        var budget = device.type == DeviceType.CPU && plan.Available is long available
            ? new NativeHeap.Budget(plan.Memory.TotalBytes, plan.Memory.TransientBytes, available) : (NativeHeap.Budget?)null;
        var heap = NativeHeap.Choose(model.parameters().Sum(p => p.numel()), config.NativeHeap, budget);
        if (heap == NativeHeap.Setting.GlibcDefault) return heap;
        var noBudget = device.type == DeviceType.CPU ? "the memory available is unknown" : $"the estimate is of {device.type}'s memory, not the host's";
        observer.Log(HeapLine(config.NativeHeap, heap, budget, noBudget));
        return heap;
    }

    /// <summary>
    /// The run's native-heap line: the setting; under auto, why; under an explicit reuse whose budget does not fit,
    /// a warning (the memory check counts the estimate, not the fragments a reused heap keeps).
    /// </summary>
    internal static string HeapLine(string mode, NativeHeap.Setting heap, NativeHeap.Budget? budget, string noBudget)
    {
        static string Weighed(NativeHeap.Budget b, string verb) =>
            $"the {MemoryEstimate.Gb(b.PeakBytes)} estimate + {NativeHeap.ReuseHeadroom:0.#} x its {MemoryEstimate.Gb(b.TransientBytes)} of tensors made and freed within a step " +
            $"{verb} the {MemoryEstimate.Gb(b.AvailableBytes)} available";
        var why = mode != NativeHeap.ModeAuto ? "" : ": " + (budget is { } b ? Weighed(b, heap == NativeHeap.Setting.Reuse ? "fits in" : "exceeds") : noBudget);
        var warning = mode == NativeHeap.ModeReuse && budget is { FitsReuse: false } tight
            ? $"; warning: {Weighed(tight, "exceeds")}, so the fragments a reused heap keeps may not fit (auto would take lean)" : "";
        return $"native heap: {heap.ToString().ToLowerInvariant()} (native_heap = {mode}{why}){warning}";
    }

    private RunSummary Run(Plan plan)
    {
        var task = plan.Task;
        var device = TorchRuntime.ResolveDevice(config.Device);
        if (config.Threads > 0) torch.set_num_threads(config.Threads);
        torch.manual_seed(config.Seed);
        var clock = Stopwatch.StartNew();

        var (model, tokenizer) = ModelFactory.Create(config, device);
        using var modelScope = model;
        NativeHeap.Apply(HeapSetting(model, device, plan));
        ComputeSettings.Apply(model, config);
        var format = RunOptions.Prompts(config, tokenizer, plan.TruncateTo);
        var sampling = RunOptions.Sampling(config, tokenizer);
        string? tokenizerSource = string.IsNullOrEmpty(config.Model) ? null : config.Model;

        var rewards = plan.Rewards;
        var warmup = WarmUp(model, tokenizer, tokenizerSource, format, task, sampling, rewards);
        model.Precision.Invalidate();   // a loaded warm-up replaced the weights

        var basePolicy = new Qwen2Policy(model);
        // LoRA trains adapters on the warmed-up (or given) model, which stays frozen from here on.
        using var adapters = LoraAdapters.ForRun(model, config.ToLoraSettings(), config.Seed, config.Adapter);
        var lora = adapters is null ? null : new LoraPolicy(basePolicy, adapters);
        IPolicy policy = lora is null ? basePolicy : lora;
        var algorithm = ObjectiveRegistry.Get(config.Algo);
        using var objective = algorithm.Create(new ObjectiveContext(
            policy, lora is null ? basePolicy.FrozenClone : lora.FrozenClone, model.Config.HiddenSize, config, device, model.HiddenDtype, lora is null ? null : lora.WithoutAdapters));
        var parameters = policy.Parameters.Concat(objective.ExtraParameters).ToList();
        using var optimizer = new Optimizers.AdamW(parameters, config.Lr, config.WeightDecay);
        using var generator = new Generator(SeedStreams.Sampler(config.Seed), device);

        var state = new RunState(model, optimizer, objective, generator, adapters, tokenizer, tokenizerSource, adapters is null ? null : BaseModelFolder());
        var progress = new TrainerProgress(0, 0, 0, 0, warmup.Pass1);
        if (TrainingCheckpoint.Latest(config.Out) is var (folder, _))
        {
            progress = TrainingCheckpoint.Load(folder, state);
            model.Precision.Invalidate();   // the weights changed under the cached bf16 copy
            observer.Log($"resumed from {folder} (step {progress.Step})");
        }
        double wallOffset = progress.WallTime - clock.Elapsed.TotalSeconds;

        using var metricsLog = new MetricsLog(config.Out, progress.Step);
        using var samplesLog = new JsonlLog(Path.Combine(config.Out, "samples.jsonl"), progress.Step);
        using var engine = RolloutEngine(model, device);
        var collector = new RolloutCollector(model, format, task, rewards, sampling, engine, policy, config.MicroBatchSize);
        var correction = engine.Remote && config.ImportanceCorrection
            ? new ImportanceOptions(ImportanceOptions.ParseMode(config.ImportanceMode), config.ImportanceCap) : null;
        using var syncClient = engine is ServerSampler ? new ServerWeightSync(ServerOptions(model)) : null;
        var sync = engine is ServerSampler server
            ? new ServerSync(syncClient!, server, string.IsNullOrEmpty(config.SyncFolder) ? Path.Combine(config.Out, "sync") : config.SyncFolder,
                             config.SyncRoute == "sglang" ? SyncRoute.Sglang : SyncRoute.Vllm, model, adapters, tokenizer, tokenizerSource, state.BaseModel)
            : null;
        // The servers start from rollout_model: give them the weights this run starts from (warm-up, adapter, resume).
        int serverWeights = progress.Step;   // the step whose weights the servers sample with
        if (sync is not null && progress.Step < config.Steps) sync.Sync(progress.Step);
        long firstProblem = (long)config.SftSteps * config.SftBatchSize;   // RL prompts follow the warm-up's
        List<Problem> ProblemsOf(int step) => Enumerable.Range(0, config.PromptsPerStep)
            .Select(j => task.Get(Split.Train, firstProblem + (long)(step - 1) * config.PromptsPerStep + j)).ToList();
        EvalResult final = warmup;
        observer.Phase("rl", config.Steps, progress.Step);

        // async_rollouts: the next step's rollouts, requested before this step's update (and the weights they were sampled with).
        (PendingRollout Rollout, int Weights)? ahead = null;
        try
        {
            for (int step = progress.Step + 1; step <= config.Steps; step++)
            {
                var stepClock = Stopwatch.StartNew();
                var metrics = new StepMetrics();
                var (pending, sampledWith) = ahead ?? (collector.Start(ProblemsOf(step), config.GroupSize, generator), serverWeights);
                ahead = null;
                GenerationBatch batch;
                RolloutTexts texts;
                using (pending) (batch, texts) = collector.Finish(pending);
                using var batchScope = batch;
                double rolloutTime = stepClock.Elapsed.TotalSeconds;
                // The servers generate step + 1 with the weights they hold now while this step updates: at most one step stale.
                if (config.AsyncRollouts && step < config.Steps)
                    ahead = (collector.Start(ProblemsOf(step + 1), config.GroupSize, generator), serverWeights);

                double lr = config.Lr * LrSchedule.Factor(step - 1, config.Steps, config.WarmupRatio, config.LrSchedule);
                bool updated = false, bad;
                PreparedBatch? prepared = null;
                // Non-finite logits show as non-finite sampled log-probs: nothing to learn from this batch.
                if (!FiniteRollout(batch)) bad = true;
                else
                {
                    prepared = objective.Prepare(batch, metrics);
                    if (correction is not null) prepared.WeighTokens(ImportanceCorrection.Weights(batch, correction, metrics));
                    (updated, bad) = Update(objective, prepared, optimizer, parameters, lr, metrics);
                }
                using var preparedScope = prepared;
                double stepTime = stepClock.Elapsed.TotalSeconds;
                if (bad)
                {
                    progress = progress with { BadSteps = progress.BadSteps + 1 };
                    var loss = metrics.ToDictionary().GetValueOrDefault("loss", double.NaN);
                    observer.Log(prepared is null
                        ? $"step {step}: non-finite logits during rollout; update skipped ({progress.BadSteps} bad steps, max_bad_steps = {config.MaxBadSteps})"
                        : $"step {step}: non-finite loss or gradient (loss {loss}); update skipped ({progress.BadSteps} bad steps, max_bad_steps = {config.MaxBadSteps})");
                }

                progress = progress with { Step = step, Rollouts = progress.Rollouts + batch.Rows, WallTime = clock.Elapsed.TotalSeconds + wallOffset };
                RolloutMetrics(batch, metrics, config.RewardThreshold);
                RewardMetrics(texts.Scores, rewards, metrics);
                foreach (var (column, share) in Popo.MathVerify.RouteShares.Of(texts.Judgements.Select(j => j.Route).ToList(), batch.Rewards)) metrics.Set(column, share);
                VerifierErrors(step, texts, metrics);
                metrics.Set("step", step);
                metrics.Set("rollouts", progress.Rollouts);
                metrics.Set("wall_time", progress.WallTime);
                metrics.Set("lr", lr);
                metrics.Set("skipped_update", updated ? 0 : 1);
                metrics.Set("non_finite", bad ? 1 : 0);
                metrics.Set("rollout_time", rolloutTime);
                metrics.Set("update_time", stepTime - rolloutTime);
                metrics.Set("step_time", stepTime);
                metrics.Set("tokens_per_s", batch.CompletionLengths.Sum() / Math.Max(stepTime, 1e-9));
                if (engine is ServerSampler remote)
                {
                    metrics.Set("server_tokens_per_s", remote.LastTokensPerSecond);
                    metrics.Set("rollout_staleness", step - 1 - sampledWith);   // updates between the sampling weights and the trained ones
                }

                bool last = step == config.Steps;
                if (last || (config.EvalEvery > 0 && step % config.EvalEvery == 0))
                {
                    final = Evaluate(model, format, task, sampling, rewards);
                    metrics.Set("eval_pass1", final.Pass1);
                    metrics.Set("eval_reward_mean", final.RewardMean);
                    metrics.Set("eval_passk", final.PassK);
                    metrics.Set("eval_greedy", final.Greedy);
                }
                var row = Row(metrics.ToDictionary(), algorithm, rewards.Columns);
                metricsLog.Write(row);
                if (prepared is not null) WriteSamples(samplesLog, step, texts, batch, prepared);
                observer.Step(step, row);
                if (progress.BadSteps > config.MaxBadSteps)
                    throw new TrainingDivergedException(
                        $"step {step}: {progress.BadSteps} steps had non-finite logits, loss or gradient (max_bad_steps = {config.MaxBadSteps}); stopping" +
                        (TrainingCheckpoint.Latest(config.Out) is var (latest, _) ? $"; the last checkpoint is {latest}" : ""));

                if (last || (config.SaveEvery > 0 && step % config.SaveEvery == 0))
                {
                    TrainingCheckpoint.Save(config.Out, progress, state);
                    TrainingCheckpoint.Prune(config.Out, config.SaveTotalLimit);
                }
                if (sync is not null && !last && step % config.SyncEvery == 0)
                {
                    ahead?.Rollout.Generation.Settle();   // requests in flight keep the weights they were sent to
                    sync.Sync(step);
                    serverWeights = step;
                }
            }
        }
        finally { ahead?.Rollout.Dispose(); }

        // Not a result: no step updated the policy (each had non-finite logits, loss or gradient), fewer than max_bad_steps.
        if (config.Steps > 0 && progress.BadSteps >= config.Steps)
            throw new TrainingDivergedException(
                $"every one of the {config.Steps} steps had non-finite logits, loss or gradient and was skipped: the policy was never updated" +
                (string.IsNullOrEmpty(config.Adapter) ? "" : $" (adapter {config.Adapter})"));
        if (config.Steps > 0 && ReferenceEquals(final, warmup))
            final = Evaluate(model, format, task, sampling, rewards);   // resumed after the last step: nothing evaluated yet
        var finalFolder = config.Steps == 0 ? Path.Combine(config.Out, "checkpoints", "warmup") : TrainingCheckpoint.FolderFor(config.Out, config.Steps);
        var summary = new RunSummary(config.Algo, config.Steps, progress.Rollouts, progress.WallTime, warmup, final, finalFolder, adapters is not null && config.Steps > 0);
        Checkpoints.AtomicFile.WriteAllText(Path.Combine(config.Out, "summary.json"),
            JsonSerializer.Serialize(summary, new JsonSerializerOptions(Json) { WriteIndented = true }));
        return summary;
    }

    /// <summary>The built-in sampler, or with rollout_engine = server the OpenAI-compatible client over rollout_urls.</summary>
    private IRolloutEngine RolloutEngine(Qwen2ForCausalLM model, Device device) =>
        config.RolloutEngine == "server" ? new ServerSampler(ServerOptions(model), device, model.Dtype, observer.Log) : new BuiltinRollout(model);

    private ServerRolloutOptions ServerOptions(Qwen2ForCausalLM model)
    {
        var options = new ServerRolloutOptions
        {
            Urls = config.RolloutUrls.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            Model = config.RolloutModel, Api = config.RolloutApi == "sglang" ? Rollout.RolloutApi.SglangGenerate : Rollout.RolloutApi.Completions,
            Timeout = TimeSpan.FromSeconds(config.RolloutTimeout), MaxInflight = config.RolloutMaxInflight,
            Retries = config.RolloutRetries, VocabSize = model.Config.VocabSize,
        };
        try { options.Validate(); }
        catch (ArgumentException e) { throw new ConfigException(e.Message); }
        return options;
    }

    /// <summary>Whether the warm-up folder holds the starting model (a warm-up ran, or the built-in model, trained from scratch).</summary>
    private bool WarmupSavesModel => config.SftSteps > 0 || string.IsNullOrEmpty(config.Model);

    /// <summary>The frozen base of a LoRA run as a full path (adapter_config.json's base_model_name_or_path): the warm-up's model, else `model`.</summary>
    private string BaseModelFolder() =>
        Path.GetFullPath(WarmupSavesModel ? Path.Combine(config.Out, "checkpoints", "warmup", "model") : config.Model);

    /// <summary>Warm-up (or load it from this run's checkpoints/warmup), then evaluate the starting policy.</summary>
    private EvalResult WarmUp(Qwen2ForCausalLM model, ITokenizer tokenizer, string? tokenizerSource, PromptFormat format, ITask task, SamplerOptions sampling, RewardSet rewards)
    {
        var folder = Path.Combine(config.Out, "checkpoints", "warmup");
        var evalFile = Path.Combine(folder, "eval.json");
        if (Directory.Exists(folder))
        {
            if (Directory.Exists(Path.Combine(folder, "model")))
            {
                HfCheckpoint.LoadWeights(model, Path.Combine(folder, "model"));
                observer.Log($"warm-up loaded from {folder}");
            }
            return JsonSerializer.Deserialize<EvalResult>(File.ReadAllText(evalFile), Json)!;
        }
        if (config.SftSteps > 0)
        {
            observer.Phase("warm-up", config.SftSteps, 0);
            // Noise imitates a base model's errors on generated demonstrations; a dataset's worked solutions are real.
            double noise = task is DatasetTask or FilteredTask ? 0 : config.SftNoise;
            if (noise != config.SftNoise && config.SftNoise > 0) observer.Log("sft_noise applies to the built-in tasks only; the dataset's solutions are used as written");
            var options = new SupervisedWarmup.Options(config.SftSteps, config.SftBatchSize, config.SftLr, config.WeightDecay, config.GradClip, config.WarmupRatio, noise, config.Seed, config.MaxBadSteps);
            SupervisedWarmup.Run(model, format, task, options,
                (step, loss) => observer.Step(step + 1, new Dictionary<string, double> { ["step"] = step + 1, ["loss"] = loss }), observer.Log);
        }
        var result = Evaluate(model, format, task, sampling, rewards);
        if (config.EvalProblems > 0) observer.Log($"starting policy: held-out pass@1 {result.Pass1:F3} (greedy {result.Greedy:F3})");
        // Without a warm-up the starting model of a --model run is that folder: only its evaluation is kept.
        AtomicFolder.Write(folder, temp =>
        {
            if (WarmupSavesModel) ModelFactory.Save(model, tokenizer, Path.Combine(temp, "model"), tokenizerSource);
            File.WriteAllText(Path.Combine(temp, "eval.json"), JsonSerializer.Serialize(result, Json));
        });
        return result;
    }

    private EvalResult Evaluate(Qwen2ForCausalLM model, PromptFormat format, ITask task, SamplerOptions sampling, RewardSet rewards) =>
        config.EvalProblems == 0 ? new EvalResult(0, 0, double.NaN, double.NaN, double.NaN, double.NaN) :
        Evaluator.Evaluate(model, format, task, config.EvalProblems, samples: 4, sampling, seed: SeedStreams.Evaluation(config.Seed), rewards: rewards);

    /// <summary>
    /// mu passes of micro-batch backward + one optimizer step each. Updated: some step was taken; Bad: some
    /// pass had a non-finite loss or gradient norm, and its step was skipped.
    /// </summary>
    private (bool Updated, bool Bad) Update(IObjective objective, PreparedBatch prepared, AdamW optimizer, IReadOnlyList<Parameter> parameters,
                                            double lr, StepMetrics metrics)
    {
        var rows = prepared.TrainRows;
        if (rows.Length == 0) return (false, false);
        var microBatches = rows.Chunk(config.MicroBatchSize).ToList();
        foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;
        bool any = false, bad = false;
        for (int iteration = 0; iteration < objective.Iterations; iteration++)
        {
            ZeroGrad(optimizer);
            bool learned = false;
            foreach (var micro in microBatches) learned |= objective.Backward(prepared, micro, microBatches.Count, metrics);
            if (!learned) continue;   // nothing to learn from: no step, so Adam's momentum does not move the weights alone
            double norm = nn.utils.clip_grad_norm_(parameters, config.GradClip > 0 ? config.GradClip : double.MaxValue);
            var loss = metrics.ToDictionary().GetValueOrDefault("loss", 0.0);
            if (!double.IsFinite(norm) || !double.IsFinite(loss))
            {
                ZeroGrad(optimizer);
                bad = true;
                continue;
            }
            metrics.Add("grad_norm", norm);
            optimizer.step();
            objective.AfterOptimizerStep();
            FinalizerPass.Run();
            any = true;
        }
        return (any, bad);
    }

    /// <summary>True when every sampled token's log-prob is finite (padding holds 0).</summary>
    private static bool FiniteRollout(GenerationBatch batch)
    {
        using var scope = NewDisposeScope();
        return batch.OldLogProbs.isfinite().all().item<bool>();
    }

    /// <summary>AdamW.zero_grad leaves one tensor handle per parameter outside any scope (TorchSharp 0.107).</summary>
    private static void ZeroGrad(AdamW optimizer)
    {
        using var scope = NewDisposeScope();
        optimizer.zero_grad();
    }

    /// <summary>
    /// verifier_errors: rollouts whose judgement cost an unexpected exception inside the verifier (their reward is 0). The
    /// first one of the run is logged with its problem and message; the count goes to every row.
    /// </summary>
    private void VerifierErrors(int step, RolloutTexts texts, StepMetrics metrics)
    {
        var (count, first) = ErrorsOf(texts.Judgements);
        if (count > 0 && !verifierErrorLogged)
        {
            observer.Log($"step {step}: the verifier failed on problem {texts.Problems[first].Id} ({texts.Judgements[first].Error}); " +
                         "the rollout gets reward 0, and the metric verifier_errors counts such rollouts (logged once)");
            verifierErrorLogged = true;
        }
        metrics.Set("verifier_errors", count);
    }

    /// <summary>How many judgements carry a verifier error, and the index of the first (-1 when none).</summary>
    internal static (int Count, int First) ErrorsOf(IReadOnlyList<Judgement> judgements)
    {
        int count = 0, first = -1;
        for (int i = 0; i < judgements.Count; i++)
            if (judgements[i].Error is not null && count++ == 0) first = i;
        return (count, first);
    }

    private bool verifierErrorLogged;

    /// <summary>The rewards' statistics; pass_rate is the share in POPO's positive set (reward &gt; reward_threshold).</summary>
    private static void RolloutMetrics(GenerationBatch batch, StepMetrics metrics, double threshold)
    {
        var r = batch.Rewards;
        double mean = r.Average();
        metrics.Set("reward_mean", mean);
        metrics.Set("reward_std", Advantages.BesselStd(r));
        metrics.Set("pass_rate", r.Count(x => x > threshold) / (double)r.Length);
        metrics.Set("completion_len_mean", batch.CompletionLengths.Average());
        metrics.Set("completion_len_max", batch.CompletionLengths.Max());
    }

    /// <summary>TRL's per-function metrics (rewards/NAME/mean, /std over the rollouts it applies to) and the count of faulty values (reward_errors).</summary>
    private static void RewardMetrics(RewardScores scores, RewardSet rewards, StepMetrics metrics)
    {
        for (int f = 0; f < rewards.Functions.Count; f++)
        {
            var (mean, std) = RewardCombination.Statistics(scores.PerFunction[f]);
            metrics.Set($"rewards/{rewards.Functions[f].Name}/mean", mean);
            metrics.Set($"rewards/{rewards.Functions[f].Name}/std", std);
        }
        metrics.Set("reward_errors", scores.Errors);
    }

    private void WriteSamples(JsonlLog log, int step, RolloutTexts texts, GenerationBatch batch, PreparedBatch prepared)
    {
        if (config.SamplesPerLog == 0) return;
        using var perRowOnHost = prepared.PerRow.cpu();   // a new handle even when already on the CPU
        var perRow = perRowOnHost.data<double>().ToArray();
        for (int i = 0; i < Math.Min(config.SamplesPerLog, batch.Rows); i++)
            log.Write(new
            {
                step, problem = texts.Problems[i].Id, prompt = texts.Problems[i].Prompt, completion = texts.Completions[i],
                gold = texts.Problems[i].Answer, reward = batch.Rewards[i], weight_or_advantage = perRow[i],
            });
    }
}
