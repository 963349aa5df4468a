using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace Popo.Engine.Rollout;

/// <summary>Which route loads full weights from disk: SGLang's /update_weights_from_disk or vLLM's reload through /collective_rpc.</summary>
internal enum SyncRoute { Sglang, Vllm }

/// <summary>
/// Puts the trainer's weights into the rollout servers (every URL of rollout_urls), from a folder the servers can read:
/// a PEFT adapter through vLLM's runtime LoRA routes (POST /v1/load_lora_adapter {lora_name, lora_path}, then
/// /v1/unload_lora_adapter {lora_name} for the one before), or a Hugging Face folder through SGLang's
/// POST /update_weights_from_disk {model_path} or vLLM's POST /collective_rpc {method: reload_weights, kwargs:
/// {weights_path}} (a development-mode route: VLLM_SERVER_DEV_MODE=1). A failed call is an error naming the server.
/// </summary>
internal sealed class ServerWeightSync(ServerRolloutOptions options, HttpMessageHandler? handler = null) : IDisposable
{
    private readonly HttpClient http = CreateClient(options, handler);

    private static HttpClient CreateClient(ServerRolloutOptions options, HttpMessageHandler? handler)
    {
        var client = handler is null ? new HttpClient() : new HttpClient(handler, disposeHandler: false);
        client.Timeout = options.Timeout;
        return client;
    }

    /// <summary>Loads the adapter folder under <paramref name="name"/> on every server, then unloads <paramref name="previous"/> (when given).</summary>
    public void LoadAdapter(string name, string folder, string? previous)
    {
        foreach (var url in options.Urls)
        {
            var v1 = url.TrimEnd('/');
            Post(v1 + "/load_lora_adapter", new JsonObject { ["lora_name"] = name, ["lora_path"] = Path.GetFullPath(folder) });
            if (previous is not null) Post(v1 + "/unload_lora_adapter", new JsonObject { ["lora_name"] = previous });
        }
    }

    /// <summary>Asks every server to load the Hugging Face folder's weights.</summary>
    public void LoadFromDisk(string folder, SyncRoute route)
    {
        var path = Path.GetFullPath(folder);
        foreach (var url in options.Urls)
        {
            var root = Root(url);
            if (route == SyncRoute.Sglang)
                Post(root + "/update_weights_from_disk", new JsonObject { ["model_path"] = path });
            else
                Post(root + "/collective_rpc", new JsonObject { ["method"] = "reload_weights", ["kwargs"] = new JsonObject { ["weights_path"] = path } });
        }
    }

    /// <summary>The server's root: the base URL without its trailing /v1 (the load-from-disk routes are not under /v1).</summary>
    public static string Root(string url)
    {
        var trimmed = url.TrimEnd('/');
        return trimmed.EndsWith("/v1", StringComparison.Ordinal) ? trimmed[..^3] : trimmed;
    }

    private void Post(string url, JsonObject body)
    {
        using var content = new StringContent(body.ToJsonString(), Encoding.UTF8);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        HttpResponseMessage response;
        try { response = http.PostAsync(url, content).GetAwaiter().GetResult(); }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
        {
            throw new RolloutServerException($"weight sync: POST {url} failed ({e.Message})", e);
        }
        using (response)
        {
            var text = response.Content.ReadAsStringAsync().GetAwaiter().GetResult();
            if (!response.IsSuccessStatusCode)
                throw new RolloutServerException($"weight sync: POST {url} answered HTTP {(int)response.StatusCode}: {(text.Length > 300 ? text[..300] : text)}");
            // SGLang answers 200 with {"success": false, "message": ...} when the load fails.
            if (TrySuccess(text) == false)
                throw new RolloutServerException($"weight sync: POST {url} reported failure: {(text.Length > 300 ? text[..300] : text)}");
        }
    }

    private static bool? TrySuccess(string text)
    {
        try { return JsonNode.Parse(text) is JsonObject o && o["success"] is JsonValue v && v.TryGetValue<bool>(out var ok) ? ok : null; }
        catch (System.Text.Json.JsonException) { return null; }
    }

    public void Dispose() => http.Dispose();
}
