using System.CommandLine;
using System.Globalization;
using NextToken.Gguf;
using NextToken.Models;
using Spectre.Console;

namespace NextToken.Cli;

/// <summary>Options shared by several commands, and the one place errors become exit codes.</summary>
internal static class CommonOptions
{
    public static readonly Option<bool> Verbose = new("--verbose", "-v")
    {
        Description = "Print full exception details (stack traces) on errors",
        Recursive = true,
    };

    /// <summary>With no --model and no $NEXTTOKEN_MODEL: the model inside the library, so every command runs offline.</summary>
    public const string DefaultModel = Models.BuiltInModel.Id;

    public static readonly Option<string?> Vocab = new("--vocab")
    {
        Description = "Tokenizer to use instead of the model's: a GGUF vocabulary, tokenizer.json, or a checkpoint directory",
        Recursive = true,
    };

    public static readonly Option<bool> QuantizeActivations = new("--q8-activations")
    {
        Description = "For Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/IQ4_NL/IQ4_XS and Q2_K/Q3_K/Q4_K/Q5_K/Q6_K weights, quantize activations to 8 bits as llama.cpp does (integer dot products; the block-32 types but IQ4_XS from a repacked copy made on first use, which also serves prompts — Q8_0 and IQ4_NL prompts only with AVX-VNNI): faster, logits move by a few percent",
        Recursive = true,
    };

    public static Option<string?> Model() => new("--model", "-m")
    {
        Description = $"A GGUF file, a Hugging Face checkpoint directory, a hub model ORG/NAME[@REVISION] (e.g. openai-community/gpt2), or 'builtin' (default: $NEXTTOKEN_MODEL, else the built-in {Models.BuiltInModel.Name})",
    };

    public static Option<bool> Json() => new("--json") { Description = "Print one JSON document instead of tables" };

    public static Option<string?> Prompt() => new("--prompt", "-p") { Description = "Prompt text" };

    public static Argument<string?> PromptArgument() => new("prompt")
    {
        Description = "Prompt text (same as --prompt)",
        Arity = ArgumentArity.ZeroOrOne,
    };

    public static Option<string?> Tokens() => new("--tokens") { Description = "Prompt as comma-separated token ids instead of text, e.g. 464,3797,3332" };

    /// <summary><c>--add-bos</c> alone puts BOS first, <c>--add-bos false</c> leaves it out; absent, the vocabulary decides (as llama.cpp).</summary>
    public static Option<bool?> AddBos() => new("--add-bos") { Description = "Put the BOS token in front of the prompt (default: as the vocabulary says; '--add-bos false' leaves it out)" };

    public static Option<bool> ParseSpecial() => new("--parse-special") { Description = "Recognise special tokens such as <|endoftext|> written in the text" };

    public static Option<int?> Threads() => new("--threads", "-t") { Description = "Threads for matrix kernels (default: all cores)" };

    /// <summary>Runs a command body; errors about the input print one line to stderr and exit non-zero.</summary>
    public static int Run(ParseResult parse, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception error) when (error is NextTokenException or FileNotFoundException or DirectoryNotFoundException
                                          or IOException or UnauthorizedAccessException or FormatException or ArgumentException)
        {
            return Fail(parse, error, 1);
        }
        catch (Exception error)
        {
            return Fail(parse, error, 2);
        }
    }

    public static async Task<int> RunAsync(ParseResult parse, Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("cancelled");
            return 130;
        }
        catch (Exception error) when (error is NextTokenException or FileNotFoundException or DirectoryNotFoundException
                                          or IOException or UnauthorizedAccessException or FormatException or ArgumentException)
        {
            return Fail(parse, error, 1);
        }
        catch (Exception error)
        {
            return Fail(parse, error, 2);
        }
    }

    private static int Fail(ParseResult parse, Exception error, int code)
    {
        Console.Out.Flush();
        if (parse.GetValue(Verbose))
            Console.Error.WriteLine(error.ToString());
        else
            Console.Error.WriteLine(code == 1 ? $"error: {error.Message}" : $"error: {error.GetType().Name}: {error.Message} (run with --verbose for details)");
        return code;
    }

    /// <summary>Positions allocated when no --ctx is given (llama.cpp's default too): models trained for 32k–128k positions would otherwise take gigabytes of KV cache per sequence.</summary>
    public const int DefaultContext = 4096;

    public static Option<int?> Context() => new("--ctx")
    {
        Description = $"Positions of context to allocate (the KV cache), up to the model's trained context (default: the trained context, at most {DefaultContext})",
    };

    /// <summary>
    /// The model, its context limited to <paramref name="context"/> (or the trained context up to
    /// <see cref="DefaultContext"/> when null).
    /// </summary>
    public static LanguageModel LoadModel(ParseResult parse, string? model, int? threads, int? context = null)
    {
        LanguageModel loaded = ModelLoader.Load(ResolveModel(model), parse.GetValue(Vocab));
        try
        {
            if (context is { } c && (c < 1 || c > loaded.TrainedContextLength))
                throw new NextTokenException($"--ctx {c}: must be 1 to the model's trained context, {loaded.TrainedContextLength}");
            int limit = context ?? Math.Min(loaded.TrainedContextLength, DefaultContext);
            if (limit != loaded.ContextLength) loaded.LimitContext(limit);
        }
        catch
        {
            loaded.Dispose();
            throw;
        }
        loaded.QuantizeActivations = parse.GetValue(QuantizeActivations);
        if (threads is { } t)
        {
            if (t < 1)
            {
                loaded.Dispose();
                throw new NextTokenException($"--threads must be at least 1, not {t}");
            }
            loaded.Threads = t;
        }
        return loaded;
    }

    /// <summary>
    /// A local file or directory as it is; the built-in model by name; otherwise a hub model id,
    /// fetched into the Hugging Face cache on first use (with a progress bar). No --model means
    /// $NEXTTOKEN_MODEL, else the built-in model.
    /// </summary>
    public static string ResolveModel(string? model)
    {
        model ??= Environment.GetEnvironmentVariable("NEXTTOKEN_MODEL") is { Length: > 0 } fromEnvironment ? fromEnvironment : DefaultModel;
        if (File.Exists(model) || Directory.Exists(model)) return model;
        if (Models.BuiltInModel.Names(model)) return Models.BuiltInModel.Id;
        if (model.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase) || model.StartsWith('.') || model.StartsWith('/') || !Hub.HubModelId.TryParse(model, out Hub.HubModelId id))
            throw new FileNotFoundException($"{model}: file not found", model);
        using var hub = new Hub.HubClient(Hub.HubOptions.FromEnvironment());
        return Downloads.Run(progress => hub.GetCheckpointAsync(id, progress)).GetAwaiter().GetResult();
    }

    /// <summary>The prompt as token ids, from --tokens or from text (option or argument).</summary>
    public static int[] PromptIds(Tokenization.Tokenizer tokenizer, string? text, string? tokenList, bool? addBos, bool parseSpecial)
    {
        if (tokenList is not null)
        {
            if (text is not null) throw new NextTokenException("give either a prompt or --tokens, not both");
            return ParseTokenList(tokenList, tokenizer.VocabSize);
        }
        if (text is null) throw new NextTokenException("no prompt: give --prompt TEXT, a prompt argument, or --tokens IDS");
        return tokenizer.Encode(text, addBos ?? tokenizer.Vocabulary.AddBos, parseSpecial).Ids;
    }

    public static int[] ParseTokenList(string list, int vocabSize)
    {
        var ids = new List<int>();
        foreach (string part in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out int id))
                throw new NextTokenException($"--tokens: '{part}' is not a token id; expected comma-separated integers");
            if ((uint)id >= (uint)vocabSize)
                throw new NextTokenException($"--tokens: token id {id} is out of range; expected 0 to {vocabSize - 1}");
            ids.Add(id);
        }
        if (ids.Count == 0) throw new NextTokenException("--tokens: no token ids given");
        return ids.ToArray();
    }

    /// <summary>How a loaded model is named to the user: the built-in one by its description, others by path.</summary>
    public static string Describe(LanguageModel model) =>
        model.FilePath == Models.BuiltInModel.Id ? Models.BuiltInModel.Description : model.FilePath;

    public static string Quote(string text) => Markup.Escape(text);

    /// <summary>An option's value, refused with the option's name unless it is a finite number within [min, max].</summary>
    public static float Checked(ParseResult parse, Option<float> option, float min = float.MinValue, float max = float.MaxValue) =>
        Checked(option.Name, parse.GetValue(option), min, max);

    public static float? Checked(ParseResult parse, Option<float?> option, float min = float.MinValue, float max = float.MaxValue) =>
        parse.GetValue(option) is { } value ? Checked(option.Name, value, min, max) : null;

    public static float Checked(string name, float value, float min = float.MinValue, float max = float.MaxValue)
    {
        if (!float.IsFinite(value)) throw new NextTokenException($"{name} must be a finite number, not {value.ToString(CultureInfo.InvariantCulture)}");
        if (value < min || value > max)
            throw new NextTokenException(max == float.MaxValue
                ? $"{name} must be {min.ToString(CultureInfo.InvariantCulture)} or more, not {value.ToString(CultureInfo.InvariantCulture)}"
                : $"{name} must be in [{min.ToString(CultureInfo.InvariantCulture)}, {max.ToString(CultureInfo.InvariantCulture)}], not {value.ToString(CultureInfo.InvariantCulture)}");
        return value;
    }

    /// <summary>An integer option's value, refused with the option's name outside [min, max].</summary>
    public static int Checked(ParseResult parse, Option<int> option, int min, int max = int.MaxValue) =>
        Checked(option.Name, parse.GetValue(option), min, max);

    public static int? Checked(ParseResult parse, Option<int?> option, int min, int max = int.MaxValue) =>
        parse.GetValue(option) is { } value ? Checked(option.Name, value, min, max) : null;

    public static int Checked(string name, int value, int min, int max = int.MaxValue) =>
        value >= min && value <= max ? value
        : throw new NextTokenException(max == int.MaxValue ? $"{name} must be at least {min}, not {value}" : $"{name} must be from {min} to {max}, not {value}");

    public static string Number(double value, string format = "N0") => value.ToString(format, CultureInfo.InvariantCulture);
}
