using System.Text;
using NextToken;
using NextToken.Chat;
using NextToken.Gguf;
using NextToken.Models;
using NextToken.Tokenization;
using SharpFuzz;

// AFL harnesses for the parsers that read untrusted input: GGUF files, Jinja chat templates, and
// Hugging Face JSON (the same input read as a tokenizer.json and as a config.json: "hf").
//   fuzz gguf|jinja|hf               run under afl-fuzz (reads each input from stdin, SharpFuzz out-of-process mode)
//   replay gguf|jinja|hf PATH...     run inputs (files or directories) in-process; exit 1 on any crash (CI, regressions)
//   seeds FIXTURES OUT            write the seed corpora OUT/gguf and OUT/jinja from the fixtures
// A crash is any exception other than NextTokenException (the engine's one-line input errors), a
// stack overflow, or a hang (afl-fuzz's -t).
return args switch
{
    ["fuzz", var target] => Fuzz(Target(target)),
    ["replay", var target, .. var paths] when paths.Length > 0 => Replay(Target(target), paths),
    ["seeds", var fixtures, var output] => Seeds.Write(fixtures, output),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: NextToken.Fuzz fuzz TARGET | replay TARGET PATH... | seeds FIXTURES_DIR OUTPUT_DIR (TARGET: gguf, jinja, hf, safetensors, request)");
    return 2;
}

static Action<byte[]> Target(string name) => name switch
{
    "gguf" => Targets.Gguf,
    "jinja" => Targets.Jinja,
    "hf" => Targets.HuggingFaceJson,
    "safetensors" => Targets.SafeTensors,
    "request" => Targets.Request,
    _ => throw new ArgumentException($"unknown target '{name}'; expected gguf, jinja, hf, safetensors or request"),
};

static int Fuzz(Action<byte[]> target)
{
    Fuzzer.OutOfProcess.Run(stream =>
    {
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        Targets.Expected(target, buffer.ToArray());
    });
    return 0;
}

static int Replay(Action<byte[]> target, string[] paths)
{
    int crashes = 0, inputs = 0;
    foreach (string path in paths.SelectMany(p => Directory.Exists(p) ? Directory.EnumerateFiles(p, "*", SearchOption.AllDirectories) : [p]).Order(StringComparer.Ordinal))
    {
        inputs++;
        try
        {
            Targets.Expected(target, File.ReadAllBytes(path));
        }
        catch (Exception error)
        {
            crashes++;
            Console.Error.WriteLine($"{path}: {error.GetType().Name}: {error.Message}");
            Console.Error.WriteLine(error.StackTrace); // where, for the fix
        }
    }
    Console.WriteLine($"{inputs} inputs, {crashes} crashes");
    return crashes == 0 ? 0 : 1;
}

internal static class Targets
{
    private static readonly string GgufPath = Path.Combine(Path.GetTempPath(), $"nexttoken-fuzz-{Environment.ProcessId}.gguf");

    private static readonly List<ChatMessage> Messages =
    [
        new("system", "Be brief."), new("user", "Hello [there] {{ not a tag }}"), new("assistant", "Hi!"), new("user", "Again, with ünïcödé 🙂"),
    ];

    /// <summary>Runs a target; the engine's input errors are the expected outcome of bad input, anything else escapes.</summary>
    public static void Expected(Action<byte[]> target, byte[] input)
    {
        try
        {
            target(input);
        }
        catch (NextTokenException)
        {
        }
    }

    /// <summary>Open the file, read every tensor's bounds and first bytes, load its tokenizer and template, and the model.</summary>
    public static void Gguf(byte[] input)
    {
        File.WriteAllBytes(GgufPath, input); // the reader memory-maps a file
        using (GgufFile file = GgufFile.Open(GgufPath))
        {
            long sum = 0;
            foreach (GgufTensorInfo info in file.Tensors)
            {
                var tensor = file.GetTensor(info.Name);
                unsafe
                {
                    if (tensor.ByteLength > 0) sum += ((byte*)tensor.Data)[0] + ((byte*)tensor.Data)[tensor.ByteLength - 1];
                }
            }
            if (file.ContainsKey("tokenizer.ggml.model"))
            {
                Tokenizer tokenizer = Tokenizer.Load(file);
                int[] ids = tokenizer.Encode("Hello world, 123 ünïcödé 🙂 <|endoftext|>", addBos: true, parseSpecial: true).Ids;
                _ = tokenizer.Decode(ids);
            }
            if (file.GetStringOrNull("tokenizer.chat_template") is { } template)
                _ = new ChatTemplate(template).Render(Messages, true, "<s>", "</s>", new DateTime(2026, 1, 1));
            GC.KeepAlive(sum);
        }
        using LanguageModel model = ModelLoader.Load(GgufPath);
    }

    private static readonly string JsonDirectory = Directory.CreateTempSubdirectory($"nexttoken-fuzz-{Environment.ProcessId}-").FullName;

    /// <summary>The input as a tokenizer.json (then encoding a sentence), and as a config.json through every accessor the loaders use.</summary>
    public static void HuggingFaceJson(byte[] input)
    {
        string path = Path.Combine(JsonDirectory, "tokenizer.json");
        File.WriteAllBytes(path, input);
        try
        {
            Tokenizer tokenizer = HuggingFaceTokenizer.FromTokenizerJson(path, 0, 0);
            _ = tokenizer.Decode(tokenizer.Encode("Hello world, 123 ünïcödé 🙂").Ids);
        }
        catch (NextTokenException)
        {
        }
        string config = Path.Combine(JsonDirectory, "config.json");
        File.Move(path, config, overwrite: true);
        HuggingFaceConfig c = HuggingFaceConfig.Load(config);
        foreach (string key in new[] { "vocab_size", "n_layer", "hidden_size", "num_attention_heads" })
            try { _ = c.Dimension(key, 1); } catch (NextTokenException) { }
        try { _ = c.TokenIds("eos_token_id"); _ = c.TokenId("bos_token_id"); } catch (NextTokenException) { }
        try { _ = c.Number("rms_norm_eps", 1e-6); _ = c.Bool("tie_word_embeddings", false); } catch (NextTokenException) { }
        _ = c.ModelType;
    }

    private static readonly string SafeTensorsPath = Path.Combine(JsonDirectory, "model.safetensors");

    /// <summary>A safetensors file: header length, JSON header, every tensor's range and first bytes.</summary>
    public static void SafeTensors(byte[] input)
    {
        File.WriteAllBytes(SafeTensorsPath, input);
        using var file = NextToken.SafeTensors.SafeTensorsFile.Open(SafeTensorsPath);
        long sum = 0;
        foreach (var info in file.Tensors)
        {
            var tensor = file.GetTensor(info.Name);
            unsafe
            {
                if (tensor.ByteLength > 0) sum += ((byte*)tensor.Data)[0] + ((byte*)tensor.Data)[tensor.ByteLength - 1];
            }
        }
        GC.KeepAlive(sum);
    }

    /// <summary>
    /// A server request body through the parser and every field accessor the OpenAI endpoints use
    /// (their refusals, ApiError, are the expected outcome and become 4xx answers).
    /// </summary>
    public static void Request(byte[] input)
    {
        try
        {
            var fields = NextToken.Server.RequestFields.Parse(input);
            foreach (string name in new[] { "model", "prompt", "sampler_order" }) Try(() => fields.String(name));
            foreach (string name in new[] { "stream", "echo", "logprobs", "ignore_eos" }) Try(() => fields.Bool(name));
            Try(() => fields.Number("temperature", 0, 2));
            Try(() => fields.Number("top_p", 0, 1, minExclusive: true));
            Try(() => fields.Integer("max_tokens", 0, int.MaxValue));
            Try(() => fields.Integer("n", 1, 16));
            Try(() => fields.Seed("seed"));
            Try(() => fields.StopStrings("stop"));
            Try(() => fields.LogitBias("logit_bias", 50_257));
        }
        catch (NextToken.Server.ApiError)
        {
        }

        static void Try(Func<object?> read)
        {
            try
            {
                _ = read();
            }
            catch (NextToken.Server.ApiError)
            {
            }
        }
    }

    public static void Jinja(byte[] input) =>
        _ = new ChatTemplate(Encoding.UTF8.GetString(input)).Render(Messages, true, "<s>", "</s>", new DateTime(2026, 1, 1));
}

/// <summary>Seed corpora: small GGUF files cut from the fixtures' vocabularies, and the fixtures' real chat templates.</summary>
internal static class Seeds
{
    public static int Write(string fixtures, string output)
    {
        string gguf = Directory.CreateDirectory(Path.Combine(output, "gguf")).FullName, jinja = Directory.CreateDirectory(Path.Combine(output, "jinja")).FullName;
        string hf = Directory.CreateDirectory(Path.Combine(output, "hf")).FullName;
        string safetensors = Directory.CreateDirectory(Path.Combine(output, "safetensors")).FullName;
        string request = Directory.CreateDirectory(Path.Combine(output, "request")).FullName;
        WriteSmallSafeTensors(Path.Combine(safetensors, "small.safetensors"));
        File.WriteAllText(Path.Combine(request, "completion.json"), """{"model":"m","prompt":"Once upon a time","max_tokens":16,"temperature":0.8,"top_p":0.95,"n":2,"seed":42,"stop":["\n",".."],"logit_bias":{"13":-100,"50256":5.5},"logprobs":3,"echo":true,"stream":false}""");
        File.WriteAllText(Path.Combine(request, "chat.json"), """{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hi"}]}],"stream":true,"stream_options":{"include_usage":true},"seed":-1}""");
        File.WriteAllText(Path.Combine(request, "ids.json"), """{"prompt":[1,2,3,65535],"max_tokens":0,"echo":true,"logprobs":0}""");
        CopyWritable(Path.Combine(fixtures, "models", "gpt2-tiny-hf", "config.json"), Path.Combine(hf, "config.json"));
        CopyWritable(Path.Combine(fixtures, "models", "llama-tiny-hf", "config.json"), Path.Combine(hf, "config-llama.json"));
        WriteSmallTokenizerJson(Path.Combine(fixtures, "vocab", "ggml-vocab-gpt-2.gguf"), Path.Combine(hf, "tokenizer.json"), 300);
        using var cases = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(fixtures, "chat-templates", "cases.json")));
        int n = 0;
        foreach (var c in cases.RootElement.GetProperty("cases").EnumerateArray())
            File.WriteAllText(Path.Combine(jinja, $"{n++:D2}-{c.GetProperty("name").GetString()!.Replace('/', '_')}.jinja"), c.GetProperty("template").GetString());
        // Two small templates first: AFL spends most of its time near the smallest seeds.
        File.WriteAllText(Path.Combine(jinja, "small-chatml.jinja"), ChatTemplate.BuiltIn["chatml"]);
        File.WriteAllText(Path.Combine(jinja, "small-llama2.jinja"), ChatTemplate.BuiltIn["llama2"]);

        string template = cases.RootElement.GetProperty("cases").EnumerateArray().First().GetProperty("template").GetString()!;
        CutVocabulary(Path.Combine(fixtures, "vocab", "ggml-vocab-gpt-2.gguf"), Path.Combine(gguf, "gpt2-vocab-300.gguf"), 300, template);
        CutVocabulary(Path.Combine(fixtures, "vocab", "ggml-vocab-llama-spm.gguf"), Path.Combine(gguf, "llama-spm-vocab-300.gguf"), 300, ChatTemplate.BuiltIn["llama2"]);
        // Whole small models (every tensor type the reader knows, real layouts), below AFL's 1 MB input limit.
        foreach (string model in new[] { "arch/qwen2-tiny.f32.gguf", "quant/llama-d256.q2_k.gguf", "quant/llama-d192.q4_k_m.gguf" })
            CopyWritable(Path.Combine(fixtures, "models", model), Path.Combine(gguf, Path.GetFileName(model)));
        Console.WriteLine($"seeds: {Directory.GetFiles(gguf).Length} GGUF files in {gguf}, {Directory.GetFiles(jinja).Length} templates in {jinja}, {Directory.GetFiles(hf).Length} JSON files in {hf}");
        return 0;
    }

    /// <summary>A small safetensors file: three tensors of different dtypes, with the header's metadata entry.</summary>
    private static void WriteSmallSafeTensors(string destination)
    {
        string header = """{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"F16","shape":[4],"data_offsets":[24,32]},"c":{"dtype":"BF16","shape":[2,2],"data_offsets":[32,40]}}""";
        byte[] json = Encoding.UTF8.GetBytes(header);
        using var stream = File.Create(destination);
        stream.Write(BitConverter.GetBytes((ulong)json.Length));
        stream.Write(json);
        stream.Write(new byte[40]);
    }

    private static void CopyWritable(string source, string destination)
    {
        File.Copy(source, destination, overwrite: true);
        if (!OperatingSystem.IsWindows()) // the fixtures are read-only, and a second run overwrites the copies
            File.SetUnixFileMode(destination, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
    }

    /// <summary>A tokenizer.json (byte-level BPE, pair-form merges, an added special token) with the first <paramref name="count"/> GPT-2 tokens.</summary>
    private static void WriteSmallTokenizerJson(string vocabulary, string destination, int count)
    {
        using GgufFile file = GgufFile.Open(vocabulary);
        string[] tokens = file.GetArray<string>("tokenizer.ggml.tokens")[..count];
        var kept = tokens.ToHashSet(StringComparer.Ordinal);
        string[][] merges = file.GetArray<string>("tokenizer.ggml.merges").Select(m => m.Split(' ')).Where(p => p.Length == 2 && kept.Contains(p[0]) && kept.Contains(p[1]) && kept.Contains(p[0] + p[1])).ToArray();
        var json = new
        {
            added_tokens = new[] { new { id = count, content = "<|endoftext|>", special = true } },
            pre_tokenizer = new { type = "ByteLevel", add_prefix_space = false },
            model = new { type = "BPE", vocab = tokens.Select((t, i) => (t, i)).ToDictionary(p => p.t, p => p.i), merges },
        };
        File.WriteAllText(destination, System.Text.Json.JsonSerializer.Serialize(json));
    }

    /// <summary>The first <paramref name="count"/> tokens of a vocabulary GGUF (with the merges and scores that stay inside them) and a template.</summary>
    private static void CutVocabulary(string source, string destination, int count, string template)
    {
        using GgufFile file = GgufFile.Open(source);
        var writer = new GgufWriter();
        string[] tokens = file.GetArray<string>("tokenizer.ggml.tokens")[..count];
        var kept = tokens.ToHashSet(StringComparer.Ordinal);
        foreach (string key in file.MetadataKeys)
        {
            GgufValue value = file.Metadata[key];
            switch (key)
            {
                case "tokenizer.ggml.tokens": writer.Add(key, GgufValue.Of(tokens)); break;
                case "tokenizer.ggml.token_type": writer.Add(key, GgufValue.Of(file.GetArray<int>(key)[..count])); break;
                case "tokenizer.ggml.scores": writer.Add(key, GgufValue.Of(file.GetArray<float>(key)[..count])); break;
                case "tokenizer.ggml.merges":
                    writer.Add(key, GgufValue.Of(file.GetArray<string>(key).Where(m => m.Split(' ') is [var a, var b] && kept.Contains(a) && kept.Contains(b) && kept.Contains(a + b)).ToArray()));
                    break;
                case "tokenizer.ggml.bos_token_id" or "tokenizer.ggml.eos_token_id" or "tokenizer.ggml.unknown_token_id" or "tokenizer.ggml.padding_token_id":
                    if (file.GetInteger(key) < count) writer.Add(key, value);
                    break;
                default: writer.Add(key, value); break;
            }
        }
        writer.Add("tokenizer.chat_template", GgufValue.Of(template));
        writer.AddTensor("token_embd.weight", [8, 4], Enumerable.Range(0, 32).Select(i => i / 32f).ToArray());
        writer.Write(destination);
    }
}
