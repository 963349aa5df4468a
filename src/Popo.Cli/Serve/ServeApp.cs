using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Popo.Cli.Serve;

/// <summary>
/// The HTTP side of `popo serve`: vLLM's OpenAI-compatible routes (/health, /v1/models, /v1/completions,
/// /v1/chat/completions, /v1/load_lora_adapter, /v1/unload_lora_adapter) and SGLang's /update_weights_from_disk, over one
/// <see cref="ServedModel"/>. Each generating or model-changing request holds the model's gate, so concurrent requests queue.
/// </summary>
internal static class ServeApp
{
    public static WebApplication Build(ServedModel served, string host, int port)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://{host}:{port}");
        builder.Services.Configure<Microsoft.Extensions.Hosting.HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));
        var app = builder.Build();

        app.MapGet("/health", () => Results.Ok());
        app.MapGet("/v1/models", () => Json(200, Models(served)));
        app.MapPost("/v1/completions", (HttpRequest r) => Locked(served, r, f => CompletionsRoute.Handle(served, f)));
        app.MapPost("/v1/chat/completions", (HttpRequest r) => Locked(served, r, f => ChatRoute.Handle(served, f)));
        app.MapPost("/v1/load_lora_adapter", (HttpRequest r) => LockedText(served, r, f =>
        {
            var name = f.RequiredString("lora_name");
            served.LoadAdapter(name, f.RequiredString("lora_path"));
            return $"Success: LoRA adapter '{name}' added successfully.";
        }));
        app.MapPost("/v1/unload_lora_adapter", (HttpRequest r) => LockedText(served, r, f =>
        {
            var name = f.RequiredString("lora_name");
            served.UnloadAdapter(name);
            return $"Success: LoRA adapter '{name}' removed successfully.";
        }));
        // SGLang's route and answer: {"success", "message"}, 200 or 400.
        app.MapPost("/update_weights_from_disk", (HttpRequest r) => Locked(served, r, f =>
        {
            served.ReloadWeights(f.RequiredString("model_path"));
            return new JsonObject { ["success"] = true, ["message"] = "Succeeded to update model weights." };
        }, e => new JsonObject { ["success"] = false, ["message"] = e.Message }));
        app.MapFallback((HttpContext c) => Json(404, Responses.Error(new ApiException(404, $"no route {c.Request.Method} {c.Request.Path}"))));
        return app;
    }

    /// <summary>The address the server listens on (with --port 0, the port the system chose).</summary>
    public static string Address(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();

    /// <summary>vLLM's model list: the base, then each adapter with the base as its parent.</summary>
    private static JsonObject Models(ServedModel served)
    {
        var data = new JsonArray { Card(served, served.Name, served.Root, null) };
        foreach (var (name, path) in served.Adapters) data.Add(Card(served, name, path, served.Name));
        return new JsonObject { ["object"] = "list", ["data"] = data };
    }

    private static JsonObject Card(ServedModel served, string id, string root, string? parent) => new()
    {
        ["id"] = id, ["object"] = "model", ["created"] = served.Created, ["owned_by"] = "popo", ["root"] = root, ["parent"] = parent,
        ["max_model_len"] = served.MaxModelLen, ["permission"] = new JsonArray(),
    };

    /// <summary>Reads the body, waits for the model, runs <paramref name="handle"/>; an <see cref="ApiException"/> becomes its error JSON.</summary>
    private static async Task<IResult> Locked(ServedModel served, HttpRequest request, Func<RequestFields, JsonObject> handle,
                                              Func<ApiException, JsonObject>? error = null)
    {
        try
        {
            var fields = RequestFields.Parse(await new StreamReader(request.Body).ReadToEndAsync(request.HttpContext.RequestAborted));
            await served.Gate.WaitAsync(request.HttpContext.RequestAborted);
            try { return Json(200, handle(fields)); }
            finally { served.Gate.Release(); }
        }
        catch (Exception e) when (Refusal(e) is { } refusal) { return Json(refusal.Status, (error ?? Responses.Error)(refusal)); }
    }

    /// <summary>The error a failed request answers with: its own refusal, or a 500 naming what went wrong (never for a cancelled request).</summary>
    private static ApiException? Refusal(Exception e) => e switch
    {
        ApiException api => api,
        OperationCanceledException => null,
        _ => new ApiException(500, $"{e.GetType().Name}: {e.Message}"),
    };

    private static async Task<IResult> LockedText(ServedModel served, HttpRequest request, Func<RequestFields, string> handle)
    {
        try
        {
            var fields = RequestFields.Parse(await new StreamReader(request.Body).ReadToEndAsync(request.HttpContext.RequestAborted));
            await served.Gate.WaitAsync(request.HttpContext.RequestAborted);
            try { return Results.Text(handle(fields), "text/plain", statusCode: 200); }
            finally { served.Gate.Release(); }
        }
        catch (Exception e) when (Refusal(e) is { } refusal) { return Json(refusal.Status, Responses.Error(refusal)); }
    }

    /// <summary>Compact JSON with characters written as themselves where JSON allows (no \u0022 for a quote in a token).</summary>
    private static readonly JsonSerializerOptions Compact = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static IResult Json(int status, JsonObject body) =>
        Results.Text(body.ToJsonString(Compact), "application/json", statusCode: status);
}
