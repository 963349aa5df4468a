using Popo.Engine.Runtime;

namespace Popo.Engine.Configuration;

/// <summary>
/// Turns the layered config files (first to last) into Popo keys, each with its source. A file holding a key only TRL
/// or the POPO authors have is read through <see cref="ForeignKeys"/>; the others are Popo's own keys. Keys that
/// depend on each other (TRL's batch sizes, epsilon and epsilon_high, max_steps and num_iterations, warmup_steps,
/// bf16 over bfloat16 weights) are settled after the last file, each from its last value. Every mapping, every key
/// ignored and why, is in <see cref="Log"/>; every refusal is collected and thrown together, naming file, line and key.
/// </summary>
internal sealed class ForeignTranslation
{
    private readonly List<(string Key, object? Value, string Source)> settings = [];
    private readonly List<string> refusals = [];
    private readonly List<(string Target, string Key, string Message)> unlessGiven = [];

    /// <summary>The lines the loader prints: what each foreign key became, and the keys not mapped with their reasons.</summary>
    public List<string> Log { get; } = [];

    /// <summary>The keys accepted and ignored (the unmapped keys), "key (reason)".</summary>
    public List<string> Unmapped { get; } = [];

    /// <summary>True when some file held TRL's keys (and none the POPO authors').</summary>
    public bool TrlFile { get; private set; }

    /// <summary>True when some file held the POPO authors' keys.</summary>
    public bool AuthorsFile { get; private set; }

    // State the handlers share; settled in Finish.
    internal bool EpsilonHigh, LossTypeGiven, UseVllm, ServerUrl;

    // A key settled in Finish (max_steps, epsilon, ...) with the position it had among the settings, so that what it
    // becomes keeps that place: a later file's key still wins over it.
    private readonly Dictionary<string, (ConfigSetting Setting, int At)> marks = [];
    private readonly List<(int At, (string Key, object? Value, string Source) Setting)> derived = [];
    private int batchAt, dtypeAt;

    internal void Mark(string name, ConfigSetting s) => marks[name] = (s, settings.Count);

    private ConfigSetting? Marked(string name) => marks.TryGetValue(name, out var m) ? m.Setting : null;

    /// <summary>A setting derived from the marked key <paramref name="from"/>, placed where that key was.</summary>
    private void Derive(string from, string key, object? value, string source) => derived.Add((marks[from].At, (key, value, source)));

    private ConfigSetting? Epsilon => Marked("epsilon");
    private ConfigSetting? MaxSteps => Marked("max_steps");
    private ConfigSetting? Epochs => Marked("num_train_epochs");
    private ConfigSetting? WarmupSteps => Marked("warmup_steps");
    private ConfigSetting? Bf16 => Marked("bf16");
    private ConfigSetting? ConstantSchedule => Marked("constant");
    private ConfigSetting? UsePeft => Marked("use_peft");
    private string? dtype;
    private ConfigSetting? dtypeSource;
    private readonly Dictionary<string, ConfigSetting> batch = [];
    private readonly List<(ForeignKey Key, ConfigSetting Setting)> vllm = [];

    /// <summary>Translates the files' settings; <paramref name="laterKeys"/> are the Popo keys that flags set afterwards.</summary>
    public static ForeignTranslation Run(IReadOnlyList<(string File, List<ConfigSetting> Settings)> files, IReadOnlyCollection<string> laterKeys)
    {
        var t = new ForeignTranslation();
        foreach (var (file, fileSettings) in files)
        {
            var foreign = fileSettings.Where(s => ForeignKeys.IsForeignOnly(s.Key)).ToList();
            if (foreign.Count == 0)
            {
                foreach (var s in fileSettings) t.settings.Add((s.Key, s.Value, s.Source));
                continue;
            }
            var origins = foreign.Select(s => ForeignKeys.Find(s.Key)!.Origin).Distinct().ToList();
            t.AuthorsFile |= origins.Contains(ForeignKeys.Authors);
            t.TrlFile |= origins.Any(o => o != ForeignKeys.Authors);
            t.Log.Add($"{file}: read as {string.Join(" + ", origins.Select(o => o == ForeignKeys.Transformers ? ForeignKeys.Trl : o).Distinct())} keys (see `popo train --help`, section \"TRL keys\")");
            foreach (var s in fileSettings)
            {
                if (ForeignKeys.Find(s.Key) is { } key) key.Handle(key, s, t);
                else t.settings.Add((s.Key, s.Value, s.Source));
            }
        }
        t.Finish(laterKeys);
        return t;
    }

    /// <summary>The Popo keys in order (later wins), with their sources.</summary>
    public IReadOnlyList<(string Key, object? Value, string Source)> Settings => settings;

    internal void Set(ForeignKey k, ConfigSetting s, string popoKey, object? value, string? how = null)
    {
        settings.Add((popoKey, value, $"{s.Source} ({k.Name})"));
        Log.Add($"  {s.Key} {ForeignKeys.Show(s.Value)} -> {popoKey} {ForeignKeys.Show(value)}{(how is null ? "" : " (" + how + ")")}");
    }

    internal void Ignore(ForeignKey k, ConfigSetting s, string reason) => Unmapped.Add($"{k.Name} ({reason})");

    internal void Refuse(ForeignKey k, ConfigSetting s, string reason) =>
        refusals.Add($"{s.Source}: key '{k.Name}' = {ForeignKeys.Show(s.Value)} is refused: {reason}");

    internal ConfigException Error(ForeignKey k, ConfigSetting s, string what) => new($"{s.Source}: key '{k.Name}': {what}, got {ForeignKeys.Show(s.Value)}");

    /// <summary>Maps onto a key another part of Popo adds; refused with <paramref name="missing"/> when this build's schema lacks it.</summary>
    internal void Soft(ForeignKey k, ConfigSetting s, string popoKey, object? value, string missing)
    {
        if (ConfigSchema.Entries.Any(e => e.Key == popoKey)) Set(k, s, popoKey, value);
        else refusals.Add($"{s.Source}: key '{k.Name}' = {ForeignKeys.Show(s.Value)} -> {popoKey}: {missing}");
    }

    /// <summary>A path key: a local path maps onto <paramref name="popoKey"/>; anything else names the hub, which needs the network.</summary>
    internal void Local(ForeignKey k, ConfigSetting s, string popoKey, Func<string, bool> exists, string what, string flag)
    {
        if (s.Value is not string path || path == "") { Ignore(k, s, "empty"); return; }
        if (exists(path)) { Set(k, s, popoKey, path); return; }
        unlessGiven.Add((popoKey, $"{k.Name} {path}", $"{s.Source}: key '{k.Name}' = {path} is refused: not a local path here, so {what}, which needs the network; " +
                                  $"Popo reads local files only: download it once and pass {flag} (or set {k.Name} to the local path)"));
    }

    internal void Dtype(ForeignKey k, ConfigSetting s, string? value)
    {
        switch (value)
        {
            case null or "auto": Ignore(k, s, "auto: the folder's own dtype, loaded as dtype"); break;
            case "bfloat16" or "bf16": dtype = "bfloat16"; dtypeSource = s; dtypeAt = settings.Count; break;
            case "float32" or "fp32": dtype = "float32"; dtypeSource = s; dtypeAt = settings.Count; break;
            default: Refuse(k, s, "expected bfloat16, float32 or auto (Popo has no float16)"); break;
        }
    }

    internal void EvalStrategy(ForeignKey k, ConfigSetting s)
    {
        switch (s.Value)
        {
            case "no" or null: Set(k, s, "eval_problems", 0L, "no held-out evaluation"); break;
            case "steps": Ignore(k, s, "steps: held-out evaluation every eval_steps"); break;
            default: Refuse(k, s, $"'{s.Value}': Popo counts steps, not epochs (use steps and eval_steps)"); break;
        }
    }

    internal void Batch(ForeignKey k, ConfigSetting s)
    {
        if (s.Value is null) return;
        if (s.Value is not long n || n < 1) throw Error(k, s, "expected a positive integer");
        batch[k.Name] = s;
        batchAt = settings.Count;
    }

    internal void Vllm(ForeignKey k, ConfigSetting s) => vllm.Add((k, s));

    private static long Int(ConfigSetting s) => (long)s.Value!;

    /// <summary>TRL's vLLM keys that are the trainer's side of the server engine, with their Popo names (the rest configure the server itself).</summary>
    private static readonly Dictionary<string, string> ServerKeys = new(StringComparer.Ordinal)
    {
        ["vllm_importance_sampling_correction"] = "importance_correction",
        ["vllm_importance_sampling_mode"] = "importance_mode",
        ["vllm_importance_sampling_cap"] = "importance_cap",
        ["vllm_server_timeout"] = "rollout_timeout",
    };

    private void Finish(IReadOnlyCollection<string> laterKeys)
    {
        if (vllm.Count > 0)
        {
            foreach (var (k, s) in vllm)
            {
                if (!UseVllm) Ignore(k, s, "a vLLM setting, unused without use_vllm (as TRL)");
                else if (k.Name == "vllm_mode" && s.Value is "colocate")
                    Refuse(k, s, "a colocated vLLM runs inside TRL's process; Popo's engines are its own sampler or a server (vllm_mode = server)");
                else if (ServerKeys.TryGetValue(k.Name, out var popoKey)) Soft(k, s, popoKey, s.Value, ForeignKeys.ServerEngine);
                else if (ConfigSchema.Entries.Any(e => e.Key == "rollout_engine")) Ignore(k, s, "a setting of the vLLM server itself, given on its command line");
                // else: use_vllm's own refusal (the server engine) covers it
            }
        }
        if (Epsilon is { } eps && !EpsilonHigh)
            Derive("epsilon", "eps_high", eps.Value, $"{eps.Source} (epsilon: TRL's epsilon_high defaults to it)");
        if (batch.Count > 0) SettleBatch();
        if (MaxSteps is { } maxSteps) SettleSteps(maxSteps);
        if (MaxSteps is not null && Epochs is not null) Unmapped.Add("num_train_epochs (max_steps wins, as in TRL)");
        else if (Epochs is { } epochs && !laterKeys.Contains("steps") && !settings.Any(x => x.Key == "steps"))
            refusals.Add($"{epochs.Source}: key 'num_train_epochs' = {ForeignKeys.Show(epochs.Value)} is refused: Popo counts RL steps; give max_steps (TRL lets max_steps win over num_train_epochs) or --steps");
        else if (Epochs is { } e) Unmapped.Add("num_train_epochs (steps is given, which wins, as TRL's max_steps)");
        if (WarmupSteps is { } w && w.Value is long ws && ws > 0)
        {
            var steps = MaxSteps?.Value as long?;
            if (steps is null) refusals.Add($"{w.Source}: key 'warmup_steps' = {ws} is refused: Popo states the warm-up as warmup_ratio; give max_steps too so the ratio is known");
            else { Derive("warmup_steps", "warmup_ratio", Math.Min(1.0, ws / (double)steps), $"{w.Source} (warmup_steps)"); Log.Add($"  warmup_steps {ws} / max_steps {steps} -> warmup_ratio {ws / (double)steps:G4}"); }
        }
        if (ConstantSchedule is { } c) { Derive("constant", "warmup_ratio", 0.0, $"{c.Source} (lr_scheduler_type constant)"); Log.Add("  lr_scheduler_type constant -> warmup_ratio 0 (transformers' constant has no warm-up; constant_with_warmup has)"); }
        if (dtype is not null)
        {
            derived.Add((dtypeAt, ("dtype", dtype, dtypeSource!.Source)));
            Log.Add($"  {dtypeSource.Key} {dtype} -> dtype {dtype}");
        }
        if (Bf16 is { } bf16)
        {
            if (dtype == "bfloat16" && bf16.Value is true)
            {
                Derive("bf16", "bf16", false, bf16.Source);
                Log.Add("  bf16 true over bfloat16 weights -> dtype bfloat16 alone (Popo's bf16 is mixed precision over float32 master weights)");
            }
            else Derive("bf16", "bf16", bf16.Value, bf16.Source);
        }
        if (UsePeft is { Value: true } peft && !settings.Any(x => x.Key == "lora_r"))
        {
            Derive("use_peft", "lora_r", 16L, $"{peft.Source} (use_peft: TRL ModelConfig's lora_r default)");
            Log.Add("  use_peft true -> lora_r 16 (TRL ModelConfig's default r; lora_alpha 32, lora_dropout 0.05 unless given)");
            if (!settings.Any(x => x.Key == "lora_alpha")) Derive("use_peft", "lora_alpha", 32L, $"{peft.Source} (use_peft)");
            if (!settings.Any(x => x.Key == "lora_dropout")) Derive("use_peft", "lora_dropout", 0.05, $"{peft.Source} (use_peft)");
        }
        if (TrlFile && !AuthorsFile && !LossTypeGiven && !settings.Any(x => x.Key == "loss_type"))
        {
            derived.Add((0, ("loss_type", "dapo", "TRL's default loss_type")));
            Log.Add("  loss_type not given -> dapo (TRL GRPOConfig's default in 0.27 and 0.28)");
        }
        if (!settings.Any(x => x.Key == "algo") && !laterKeys.Contains("algo") && (TrlFile || AuthorsFile))
        {
            var algo = AuthorsFile ? "popo" : "grpo";
            derived.Add((0, ("algo", algo, AuthorsFile ? "the POPO authors' keys" : "TRL GRPOConfig keys")));
            Log.Add($"  algo not given -> {algo} ({(AuthorsFile ? "the POPO authors' keys" : "a GRPOConfig trains GRPO")}; --algo chooses another)");
        }
        // Stable: settings derived at the same place keep their order; each goes before the setting that followed its key.
        foreach (var (at, setting) in derived.Select((d, i) => (d, i)).OrderByDescending(x => x.d.At).ThenByDescending(x => x.i).Select(x => x.d))
            settings.Insert(at, setting);
        var given = settings.Select(x => x.Key).Concat(laterKeys).ToHashSet();
        foreach (var (target, key, message) in unlessGiven)
            if (!given.Contains(target)) refusals.Add(message);
            else Log.Add($"  {key}: not used, {target} is given");
        if (refusals.Count > 0)
            throw new ConfigException((refusals.Count == 1 ? "" : $"{refusals.Count} keys refused:\n  ") + string.Join("\n  ", refusals));
    }

    /// <summary>
    /// TRL's batch: per_device_train_batch_size completions per forward, gradient_accumulation_steps of them per
    /// optimizer step, one process; a generation batch of generation_batch_size (default: per_device x
    /// steps_per_generation, whose default is gradient_accumulation_steps) completions = prompts x num_generations.
    /// Popo takes one optimizer step per generation batch and pass, so steps_per_generation must equal
    /// gradient_accumulation_steps.
    /// </summary>
    private void SettleBatch()
    {
        long Get(string key, long fallback) => batch.TryGetValue(key, out var s) ? Int(s) : fallback;
        string Src(params string[] keys) => keys.Where(batch.ContainsKey).Select(k => batch[k].Source).LastOrDefault() ?? "TRL's defaults";
        long perDevice = Get("per_device_train_batch_size", 8), accumulation = Get("gradient_accumulation_steps", 1), g = Get("num_generations", 8);
        long perStep = perDevice * accumulation;
        long stepsPerGeneration;
        if (batch.ContainsKey("generation_batch_size") && batch.ContainsKey("steps_per_generation"))
            throw new ConfigException($"{Src("generation_batch_size")}: generation_batch_size and steps_per_generation are mutually exclusive (as in TRL); give one");
        if (batch.TryGetValue("generation_batch_size", out var gbs))
        {
            if (Int(gbs) % perDevice != 0)
                throw new ConfigException($"{gbs.Source}: generation_batch_size {Int(gbs)} must be a multiple of per_device_train_batch_size {perDevice} x 1 process (as in TRL)");
            stepsPerGeneration = Int(gbs) / perDevice;
        }
        else stepsPerGeneration = Get("steps_per_generation", accumulation);
        long generation = perDevice * stepsPerGeneration;
        var arithmetic = $"per_device_train_batch_size {perDevice} x gradient_accumulation_steps {accumulation} x 1 process = {perStep} completions per optimizer step";
        if (stepsPerGeneration != accumulation)
            refusals.Add($"{Src("steps_per_generation", "generation_batch_size")}: {arithmetic}, but a generation batch of {generation} completions " +
                         $"(steps_per_generation {stepsPerGeneration}) would take {stepsPerGeneration / (double)accumulation:G3} optimizer steps per pass; " +
                         "Popo takes one optimizer step per generation batch and pass (num_iterations passes): make steps_per_generation = gradient_accumulation_steps (or drop it and generation_batch_size)");
        if (generation % g != 0)
            refusals.Add($"{Src("num_generations", "per_device_train_batch_size", "gradient_accumulation_steps")}: {arithmetic}, which num_generations {g} does not divide (TRL refuses it too)");
        if (refusals.Count > 0) return;
        var source = Src("per_device_train_batch_size", "gradient_accumulation_steps", "num_generations", "generation_batch_size", "steps_per_generation") + " (TRL batch)";
        derived.Add((batchAt, ("group_size", g, source)));
        derived.Add((batchAt, ("prompts_per_step", generation / g, source)));
        derived.Add((batchAt, ("micro_batch_size", perDevice, source)));
        Log.Add($"  {arithmetic} = {generation / g} prompts x G {g} -> prompts_per_step {generation / g}, group_size {g}, micro_batch_size {perDevice}");
    }

    private void SettleSteps(ConfigSetting maxSteps)
    {
        if (maxSteps.Value is not long optimizerSteps || optimizerSteps < 0)
        {
            refusals.Add($"{maxSteps.Source}: key 'max_steps' = {ForeignKeys.Show(maxSteps.Value)} is refused: expected a non-negative step count (-1, epochs, is not supported: Popo counts steps)");
            return;
        }
        var mu = settings.LastOrDefault(x => x.Key == "num_iterations").Value is long m and > 0 ? m : 1;
        var steps = (optimizerSteps + mu - 1) / mu;
        Derive("max_steps", "steps", steps, $"{maxSteps.Source} (max_steps)");
        Log.Add(mu == 1
            ? $"  max_steps {optimizerSteps} -> steps {steps} (one optimizer step per generation batch)"
            : $"  max_steps {optimizerSteps} optimizer steps / num_iterations {mu} -> steps {steps} generation batches{(optimizerSteps % mu == 0 ? "" : $" ({steps * mu} optimizer steps: rounded up)")}");
    }
}
