using System.Runtime.InteropServices;
using System.Text.Json;
using NextToken.Chat;
using NextToken.Inspection;
using NextToken.Models;
using NextToken.Sampling;

namespace NextToken.Server;

/// <summary>
/// The inspection commands over HTTP (<c>/v1/inspect/…</c>), answering with the same records the
/// CLI's <c>--json</c> writes. They run on the scheduler's thread between decode steps.
/// </summary>
internal sealed class InspectEndpoints(ModelHost host)
{
    private LanguageModel Model => host.Model;

    /// <summary>
    /// <c>{"prompt": text | "tokens": [ids], "top": 10, "explain": {sampler settings} , "seed": n, "logits": bool}</c>:
    /// the next-token distribution (with <c>routing</c>, the experts each token went to); with <c>logits</c>, the whole row as base64 little-endian float32
    /// (what a client needs to reshape the distribution itself).
    /// </summary>
    public async Task<object> Next(RequestFields request, CancellationToken cancel)
    {
        int[] ids = Prompt(request);
        int top = request.Integer("top", 1, Model.VocabSize) ?? 10;
        SamplingOptions? explain = request.Get("explain") is { } e ? Sampling(e) : null;
        ulong? seed = request.Seed("seed");
        bool withLogits = request.Bool("logits") ?? false;
        bool routing = request.Bool("routing") ?? false;
        if (routing && !RoutingLedger.HasRouting(Model))
            throw ApiError.BadValue("routing", $"the served model ({Model.Architecture}) has no mixture-of-experts layers to show routing for");
        return await host.Scheduler.RunExclusiveAsync<object>(() =>
        {
            var logits = new float[Model.VocabSize];
            Model.Forward(Model.CreateState(), ids, logits);
            NextReport report = Reports.Next(Model, ids, logits, top, explain, seed, routing);
            return withLogits ? new InspectNextWithLogits(report, Convert.ToBase64String(MemoryMarshal.AsBytes(logits.AsSpan()))) : report;
        }, cancel);
    }

    /// <summary><c>{"prompt", "prompt_b", "system_a", "system_b", "top", "raw"}</c>: two contexts' next-token lists compared.</summary>
    public async Task<object> Compare(RequestFields request, CancellationToken cancel)
    {
        string prompt = request.String("prompt") ?? throw new ApiError(400, "'prompt' is required", "prompt", "missing_field");
        ChatTemplate? template = request.Bool("raw") ?? false ? null : Template(request);
        int[] a, b;
        lock (host.TokenizerGate)
        {
            a = ChatPrompt.Tokens(Model, prompt, request.String("system_a"), template);
            b = ChatPrompt.Tokens(Model, request.String("prompt_b") ?? prompt, request.String("system_b"), template);
        }
        CheckContext(a, "prompt");
        CheckContext(b, "prompt_b");
        int top = request.Integer("top", 1, Model.VocabSize) ?? 10;
        return await host.Scheduler.RunExclusiveAsync<object>(() => Reports.Compare(Model, a, b, top), cancel);
    }

    /// <summary><c>{"prompt" | "tokens", "position": -1, "top": 5}</c>: the logit lens.</summary>
    public async Task<object> Lens(RequestFields request, CancellationToken cancel)
    {
        int[] ids = Prompt(request);
        int position = request.Integer("position", -ids.Length, ids.Length - 1) ?? -1;
        int top = request.Integer("top", 1, Model.VocabSize) ?? 5;
        return await host.Scheduler.RunExclusiveAsync<object>(() => Reports.Lens(Model, ids, position, top), cancel);
    }

    /// <summary><c>{"prompt" | "tokens", "layer", "spans": [{"start", "end"}], "recent": 8}</c>: where the last token looks.</summary>
    public async Task<object> Attention(RequestFields request, CancellationToken cancel)
    {
        int[] ids = Prompt(request);
        int? layer = request.Integer("layer", 0, Model.LayerCount - 1);
        int recent = request.Integer("recent", 1, Model.ContextLength) ?? 8;
        List<(int Start, int End)> spans = Spans(request, "spans", ids.Length);
        return await host.Scheduler.RunExclusiveAsync<object>(() => Reports.Attention(Model, ids, layer, spans, recent), cancel);
    }

    /// <summary>
    /// <c>{"system", "conversation": [{"role", "content"}] | "synthetic": N, "reanchor": 0, "template"}</c>:
    /// turn by turn, the attention paid to the system prompt and its effect on the next token.
    /// </summary>
    public async Task<object> Drift(RequestFields request, CancellationToken cancel)
    {
        string system = request.String("system") ?? throw new ApiError(400, "'system' (the system prompt whose drift is measured) is required", "system", "missing_field");
        List<ChatMessage> turns = (request.Has("conversation"), request.Integer("synthetic", 1, 1000)) switch
        {
            (true, null) => OpenAiEndpoints.Messages(request, "conversation"),
            (false, { } n) => DriftMeter.SyntheticConversation(n),
            (false, null) => throw new ApiError(400, "'conversation' (a list of {role, content}) or 'synthetic' (a number of built-in exchanges) is required", "conversation", "missing_field"),
            _ => throw ApiError.BadValue("synthetic", "give either 'conversation' or 'synthetic', not both"),
        };
        if (!turns.Any(t => t.Role == "user")) throw ApiError.BadValue("conversation", "'conversation' has no user turn; drift is measured where the model answers one");
        int every = request.Integer("reanchor", 0, 100_000) ?? 0;
        ChatTemplate template = Template(request) ?? ChatTemplate.FromName("plain");
        // The meter tokenizes as it goes: hold the tokenizer as the request handlers do.
        return await host.Scheduler.RunExclusiveAsync<object>(() =>
        {
            lock (host.TokenizerGate) return Reports.Drift(Model, template, system, turns, every, cancel);
        }, cancel);
    }

    /// <summary>
    /// <c>{"prompt", "add", "sub", "layer": 0, "coeff": 4, "runs": 3, "max_tokens": 30, "seed", sampler fields}</c>:
    /// continuations without and with the steering vector (the model's hooks change, so nothing else runs meanwhile).
    /// </summary>
    public async Task<object> Steer(RequestFields request, CancellationToken cancel)
    {
        var (prompt, add, sub, pad) = SteerPrompts(request);
        int layer = request.Integer("layer", 0, Model.LayerCount - 1) ?? 0;
        float coefficient = (float)(request.Number("coeff", -1e6, 1e6) ?? 4);
        int runs = request.Integer("runs", 1, 16) ?? 3;
        int maxTokens = request.Integer("max_tokens", 0, Model.ContextLength) ?? 30;
        SamplingOptions sampling = OpenAiEndpoints.Sampling(request, Model.VocabSize, Steering.DefaultSampling);
        ulong seed = request.Seed("seed") ?? Xoshiro256StarStar.RandomSeed();
        return await host.Scheduler.RunExclusiveAsync<object>(
            () => Reports.Steer(Model, prompt, add, sub, pad, layer, coefficient, runs, maxTokens, sampling, seed, cancel), cancel);
    }

    /// <summary><c>{"prompt", "add", "sub", "coeffs": [1, 2, 4, 8], "targets": [text]}</c>: every layer × coefficient, the targets' log-probability lift.</summary>
    public async Task<object> SteerSweep(RequestFields request, CancellationToken cancel)
    {
        var (prompt, add, sub, pad) = SteerPrompts(request);
        float[] coefficients = [1, 2, 4, 8];
        if (request.Get("coeffs") is { } list)
        {
            if (list.ValueKind != JsonValueKind.Array || list.GetArrayLength() is 0 or > 32) throw RequestFields.WrongKind("coeffs", list, "a list of 1 to 32 numbers");
            coefficients = list.EnumerateArray().Select((c, i) => c.ValueKind == JsonValueKind.Number && double.IsFinite(c.GetDouble()) && Math.Abs(c.GetDouble()) <= 1e6
                ? (float)c.GetDouble() : throw ApiError.BadValue("coeffs", $"'coeffs'[{i}] is {c.GetRawText()}; expected a number from -1e6 to 1e6")).ToArray();
        }
        string[] targetTexts = [request.String("add")!];
        if (request.Get("targets") is { } targets)
        {
            if (targets.ValueKind != JsonValueKind.Array || targets.GetArrayLength() == 0 || targets.EnumerateArray().Any(t => t.ValueKind != JsonValueKind.String))
                throw RequestFields.WrongKind("targets", targets, "a non-empty list of strings");
            targetTexts = targets.EnumerateArray().Select(t => t.GetString()!).ToArray();
        }
        int[] targetIds;
        lock (host.TokenizerGate) targetIds = Steering.TargetIds(Model, targetTexts);
        if (targetIds.Length == 0) throw ApiError.BadValue("targets", "no target text encodes to a token");
        return await host.Scheduler.RunExclusiveAsync<object>(() => Reports.SteerSweep(Model, prompt, add, sub, pad, coefficients, targetIds, cancel), cancel);
    }

    private (int[] Prompt, int[] Add, int[] Sub, int Pad) SteerPrompts(RequestFields request)
    {
        string Required(string name, string what) => request.String(name) ?? throw new ApiError(400, $"'{name}' ({what}) is required", name, "missing_field");
        string prompt = Required("prompt", "the text to continue"), add = Required("add", "the text whose activations are added"), sub = Required("sub", "the text whose activations are subtracted");
        (int[] Prompt, int[] Add, int[] Sub, int Pad) encoded;
        lock (host.TokenizerGate) encoded = Steering.Encode(Model, prompt, add, sub);
        if (encoded.Prompt.Length == 0) throw ApiError.BadValue("prompt", "the prompt is empty");
        if (encoded.Add.Length == 0 && encoded.Sub.Length == 0) throw ApiError.BadValue("add", "'add' and 'sub' are both empty");
        CheckContext(encoded.Prompt, "prompt");
        CheckContext(encoded.Add, "add");
        CheckContext(encoded.Sub, "sub");
        return encoded;
    }

    /// <summary><c>{"prompt", "system", "template", "raw"}</c>: which experts each token goes to (mixture-of-experts models).</summary>
    public async Task<object> Routing(RequestFields request, CancellationToken cancel)
    {
        if (!RoutingLedger.HasRouting(Model))
            throw new ApiError(400, $"the served model ({Model.Architecture}) has no mixture-of-experts layers to show routing for", "model", "not_mixture_of_experts");
        string prompt = request.String("prompt") ?? throw new ApiError(400, "'prompt' is required", "prompt", "missing_field");
        ChatTemplate? template = request.Bool("raw") ?? false ? null : Template(request);
        string? system = request.String("system");
        int[] ids;
        int[]? withSystem = null;
        lock (host.TokenizerGate)
        {
            ids = ChatPrompt.Tokens(Model, prompt, null, template);
            if (system is not null) withSystem = ChatPrompt.Tokens(Model, prompt, system, template);
        }
        if (ids.Length == 0) throw ApiError.BadValue("prompt", "the prompt is empty");
        CheckContext(ids, "prompt");
        if (withSystem is not null) CheckContext(withSystem, "system");
        return await host.Scheduler.RunExclusiveAsync<object>(() => Reports.Routing(Model, ids, withSystem), cancel);
    }

    /// <summary><c>{"prompts": [text], "layer": 0, "axis_a": [text], "axis_b": [text]}</c>: every token's residual vector in 2-D.</summary>
    public async Task<object> Map(RequestFields request, CancellationToken cancel)
    {
        int[][] prompts = Texts(request, "prompts", required: true)!;
        int layer = request.Integer("layer", 0, Model.LayerCount) ?? 0;
        int[][]? a = Texts(request, "axis_a", required: false), b = Texts(request, "axis_b", required: false);
        if ((a is null) != (b is null)) throw ApiError.BadValue(a is null ? "axis_a" : "axis_b", "a concept axis needs both 'axis_a' and 'axis_b'");
        // Every token's vector is kept for the projection: bound the total.
        int total = prompts.Sum(p => p.Length) + (a?.Sum(p => p.Length) ?? 0) + (b?.Sum(p => p.Length) ?? 0);
        if (total > MaxMapTokens) throw ApiError.BadValue("prompts", $"the prompts have {total} tokens in all; the map takes at most {MaxMapTokens}");
        return await host.Scheduler.RunExclusiveAsync<object>(() => Reports.Map(Model, prompts, layer, a, b, "axis_a − axis_b"), cancel);
    }

    private const int MaxMapTokens = 16_384;

    /// <summary>A list of texts, each tokenized as a prompt (BOS as the vocabulary wants).</summary>
    private int[][]? Texts(RequestFields request, string name, bool required)
    {
        if (request.Get(name) is not { } list)
            return required ? throw new ApiError(400, $"'{name}' is required: a list of texts", name, "missing_field") : null;
        if (list.ValueKind != JsonValueKind.Array || list.GetArrayLength() == 0) throw RequestFields.WrongKind(name, list, "a non-empty list of texts");
        var texts = list.EnumerateArray().Select((t, i) => t.ValueKind == JsonValueKind.String && t.GetString()!.Trim().Length > 0
            ? t.GetString()! : throw ApiError.BadValue(name, $"'{name}'[{i}] must be a non-empty text, not {t.GetRawText()}")).ToArray();
        int[][] ids;
        lock (host.TokenizerGate) ids = texts.Select(t => Model.Tokenizer.Encode(t, Model.Tokenizer.Vocabulary.AddBos).Ids).ToArray();
        foreach (int[] prompt in ids) CheckContext(prompt, name);
        return ids;
    }

    /// <summary>The request's <c>template</c> (a built-in name), else the model's own, else null.</summary>
    private ChatTemplate? Template(RequestFields request)
    {
        try
        {
            return ChatPrompt.Template(Model, request.String("template"));
        }
        catch (TemplateException error)
        {
            throw ApiError.BadValue("template", error.Message);
        }
    }

    private static List<(int Start, int End)> Spans(RequestFields request, string name, int length)
    {
        var spans = new List<(int, int)>();
        if (request.Get(name) is not { } list) return spans;
        if (list.ValueKind != JsonValueKind.Array) throw RequestFields.WrongKind(name, list, "a list of {\"start\", \"end\"} objects");
        int i = 0;
        foreach (JsonElement item in list.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object) throw RequestFields.WrongKind(name, item, "a list of {\"start\", \"end\"} objects");
            int Bound(string key) => item.TryGetProperty(key, out JsonElement v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int x) ? x
                : throw ApiError.BadValue(name, $"'{name}'[{i}] needs an integer '{key}'");
            int start = Bound("start"), end = Bound("end");
            if (start < 0 || end > length || start >= end)
                throw ApiError.BadValue(name, $"'{name}'[{i}] is {start}:{end}; expected 0 ≤ start < end ≤ {length} (the prompt's tokens)");
            spans.Add((start, end));
            i++;
        }
        return spans;
    }

    private int[] Prompt(RequestFields request)
    {
        int[] ids;
        if (request.Get("tokens") is { } list)
        {
            if (request.Has("prompt")) throw ApiError.BadValue("tokens", "give either 'prompt' or 'tokens', not both");
            if (list.ValueKind != JsonValueKind.Array) throw RequestFields.WrongKind("tokens", list, "a list of token ids");
            ids = list.EnumerateArray().Select((item, i) => item.ValueKind == JsonValueKind.Number && item.TryGetInt32(out int id) && (uint)id < (uint)Model.VocabSize
                ? id : throw ApiError.BadValue("tokens", $"'tokens'[{i}] is {item.GetRawText()}; expected a token id from 0 to {Model.VocabSize - 1}")).ToArray();
        }
        else
        {
            string text = request.String("prompt") ?? throw new ApiError(400, "'prompt' (text) or 'tokens' (ids) is required", "prompt", "missing_field");
            lock (host.TokenizerGate) ids = Model.Tokenizer.Encode(text, request.Bool("add_bos") ?? Model.Tokenizer.Vocabulary.AddBos).Ids;
        }
        if (ids.Length == 0) throw ApiError.BadValue("prompt", "the prompt is empty");
        CheckContext(ids, "prompt");
        return ids;
    }

    private void CheckContext(int[] ids, string param)
    {
        if (ids.Length > Model.ContextLength)
            throw new ApiError(400, $"the prompt has {ids.Length} tokens; this model's context holds {Model.ContextLength}", param, "context_length_exceeded");
    }

    private SamplingOptions Sampling(JsonElement settings)
    {
        if (settings.ValueKind != JsonValueKind.Object) throw RequestFields.WrongKind("explain", settings, "an object of sampler settings");
        var fields = new RequestFields(settings);
        var defaults = new SamplingOptions();
        return new SamplingOptions
        {
            Temperature = (float)(fields.Number("temperature", 0, 100) ?? defaults.Temperature),
            TopK = fields.Integer("top_k", 0, Model.VocabSize) ?? defaults.TopK,
            TopP = (float)(fields.Number("top_p", 0, 1, minExclusive: true) ?? defaults.TopP),
            MinP = (float)(fields.Number("min_p", 0, 1) ?? defaults.MinP),
            TypicalP = (float)(fields.Number("typical_p", 0, 1, minExclusive: true) ?? defaults.TypicalP),
        };
    }
}
