using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using static TorchSharp.torch;

namespace Popo.Engine.Rollout;

/// <summary>
/// Rollouts from inference servers (vLLM, SGLang, `popo serve`): one request per distinct prompt for its G completions
/// (OpenAI-compatible `/completions` with n = G, or SGLang's native `/generate` with the prompt repeated G times), sent as token ids, spread round-robin over the servers with at most MaxInflight in
/// flight. Each request has a timeout; a failed one (no connection, timeout, 5xx, a malformed answer) is retried with
/// exponential backoff, then the batch fails with a <see cref="RolloutServerException"/> naming the server and the
/// prompt. The answers fill the built-in sampler's <see cref="GenerationBatch"/> layout, OldLogProbs holding the
/// server's log-probs (the trainer re-bases them on its own, <see cref="GenerationBatch.WithTrainerLogProbs"/>).
/// </summary>
internal sealed class ServerSampler : IRolloutEngine
{
    private readonly ServerRolloutOptions options;
    private readonly HttpClient http;
    private readonly Device device;
    private readonly ScalarType wide;
    private readonly Action<string>? log;

    /// <param name="handler">The HTTP stack (tests pass an in-process fake); null = a plain <see cref="HttpClientHandler"/>.</param>
    public ServerSampler(ServerRolloutOptions options, Device device, ScalarType modelDtype, Action<string>? log = null, HttpMessageHandler? handler = null)
    {
        options.Validate();
        this.options = options;
        this.device = device;
        wide = modelDtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        this.log = log;
        // The per-request timeout is ours (a CancellationTokenSource per attempt), so the client's own is off.
        http = handler is null ? new HttpClient() : new HttpClient(handler, disposeHandler: false);
        http.Timeout = System.Threading.Timeout.InfiniteTimeSpan;
        Model = options.Model;
    }

    public bool Remote => true;

    /// <summary>The model name the requests carry: rollout_model, then each LoRA sync's adapter name.</summary>
    public string Model { get; set; }

    /// <summary>Completion tokens per second the servers produced over the last batch (wall time of the whole batch).</summary>
    public double LastTokensPerSecond { get; private set; }

    public GenerationBatch Generate(IReadOnlyList<int[]> prompts, int groupSize, SamplerOptions sampling) =>
        Begin(prompts, groupSize, sampling).Complete();

    /// <summary>Sends the requests now; the batch is built when <see cref="PendingGeneration.Complete"/> is called.</summary>
    public PendingGeneration Begin(IReadOnlyList<int[]> prompts, int groupSize, SamplerOptions sampling)
    {
        sampling.Validate();
        if (prompts.Count == 0) throw new ArgumentException("no prompts to sample from");
        var model = Model;   // the name at the time of asking: a later sync does not change what these requests carry
        var work = Task.Run(async () =>
        {
            var clock = Stopwatch.StartNew();
            var answers = await GenerateAll(prompts, groupSize, sampling, model).ConfigureAwait(false);
            return (Answers: answers, Seconds: Math.Max(clock.Elapsed.TotalSeconds, 1e-9));
        });
        return PendingGeneration.Running(work, () =>
        {
            var (answers, seconds) = work.Result;
            long tokens = answers.Sum(a => a.Sum(c => (long)c.Tokens.Length));
            LastTokensPerSecond = tokens / seconds;
            log?.Invoke($"rollout server: {prompts.Count * groupSize} completions, {tokens} tokens in {seconds:F2} s ({LastTokensPerSecond:F0} tokens/s)");
            var rows = prompts.SelectMany(p => Enumerable.Repeat(p, groupSize)).ToList();
            var completions = answers.SelectMany(a => a).ToList();
            return GenerationBatch.FromCompletions(rows, completions.Select(c => c.Tokens).ToList(),
                                                   completions.Select(c => c.LogProbs).ToList(), sampling.PadId, device, wide,
                                                   completions.Select(c => c.FinishReason == "length").ToList());
        });
    }

    private async Task<ServerCompletion[][]> GenerateAll(IReadOnlyList<int[]> prompts, int groupSize, SamplerOptions sampling, string model)
    {
        using var gate = new SemaphoreSlim(options.MaxInflight);
        using var failed = new CancellationTokenSource();   // the first hopeless request stops the rest
        var tasks = prompts.Select(async (prompt, index) =>
        {
            await gate.WaitAsync(failed.Token).ConfigureAwait(false);
            try { return await Request(prompt, index, groupSize, sampling, model, failed.Token).ConfigureAwait(false); }
            catch (RolloutServerException) { failed.Cancel(); throw; }
            finally { gate.Release(); }
        }).ToList();
        try { return await Task.WhenAll(tasks).ConfigureAwait(false); }
        catch (OperationCanceledException)
        {
            // WhenAll reports the first task's exception; the failure that cancelled the others is the one to show.
            throw tasks.Where(t => t.IsFaulted).Select(t => t.Exception!.InnerException).OfType<RolloutServerException>().FirstOrDefault()
                  ?? throw new RolloutServerException("rollout requests were cancelled");
        }
    }

    /// <summary>One prompt's request with its retries: server prompt mod |servers|.</summary>
    private async Task<ServerCompletion[]> Request(int[] prompt, int index, int n, SamplerOptions sampling, string model, CancellationToken stop)
    {
        var server = options.Urls[index % options.Urls.Count].TrimEnd('/');
        bool native = options.Api == RolloutApi.SglangGenerate;
        var url = native ? ServerWeightSync.Root(server) + "/generate" : server + "/completions";
        var body = (native ? CompletionsProtocol.GenerateRequest(prompt, n, sampling) : CompletionsProtocol.Request(model, prompt, n, sampling)).ToJsonString();
        var stops = sampling.StopTokenIds.ToHashSet();
        string? last = null;
        int attempts = 0;
        for (int attempt = 0; attempt <= options.Retries; attempt++)
        {
            attempts = attempt + 1;
            if (attempt > 0)
                await Task.Delay(options.Backoff * Math.Pow(2, attempt - 1), stop).ConfigureAwait(false);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
            timeout.CancelAfter(options.Timeout);
            try
            {
                using var content = new StringContent(body, Encoding.UTF8);
                content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                using var response = await http.PostAsync(url, content, timeout.Token).ConfigureAwait(false);
                var text = await response.Content.ReadAsStringAsync(timeout.Token).ConfigureAwait(false);
                if (!response.IsSuccessStatusCode)
                {
                    last = $"HTTP {(int)response.StatusCode} {Short(text)}";
                    if ((int)response.StatusCode is >= 400 and < 500 and not 408 and not 429) break;   // the request itself is wrong: retrying cannot help
                    continue;
                }
                return native ? CompletionsProtocol.ParseGenerate(text, n, options.VocabSize, sampling.MaxNewTokens, stops)
                              : CompletionsProtocol.Parse(text, n, options.VocabSize, sampling.MaxNewTokens, stops);
            }
            catch (OperationCanceledException) when (!stop.IsCancellationRequested)
            {
                last = $"no answer within rollout_timeout = {options.Timeout.TotalSeconds:G} s";
            }
            catch (HttpRequestException e) { last = $"connection failed ({e.Message})"; }
            catch (IOException e) { last = $"connection failed ({e.Message})"; }
            catch (MalformedCompletionException e) { last = $"malformed answer: {e.Message}"; }
        }
        throw new RolloutServerException(
            $"rollout server {url}: the request for prompt {index} (n = {n}, {prompt.Length} prompt tokens) failed after {attempts} attempt(s): {last}");
    }

    private static string Short(string text) => text.Length <= 200 ? text : text[..200] + "...";

    public void Dispose() => http.Dispose();
}
