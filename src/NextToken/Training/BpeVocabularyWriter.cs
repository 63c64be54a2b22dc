using System.Text.Json;
using NextToken.Gguf;
using NextToken.Tokenization;

namespace NextToken.Training;

/// <summary>
/// Writes a trained <see cref="BpeModel"/> as a Hugging Face <c>tokenizer.json</c> (byte-level BPE:
/// tokens spelled with GPT-2's byte → character table, merges in order, special tokens as added
/// tokens) and as GGUF <c>tokenizer.ggml.*</c> metadata (llama.cpp's gpt2 vocabulary keys).
/// </summary>
public static class BpeVocabularyWriter
{
    /// <summary>Token strings of ids 0 … VocabSize−1 (special tokens as they are written).</summary>
    public static string[] TokenStrings(BpeModel model)
    {
        char[] table = ByteLevelBpeTokenizer.ByteToUnicode();
        var tokens = new string[model.VocabSize];
        for (int id = 0; id < model.TokenBytes.Count; id++)
            tokens[id] = new string([.. model.TokenBytes[id].Select(b => table[b])]);
        for (int i = 0; i < model.Special.Count; i++) tokens[model.TokenBytes.Count + i] = model.Special[i];
        return tokens;
    }

    /// <summary>
    /// Ids whose bytes equal those of an earlier id (two merges can spell the same bytes, e.g. (a, bc)
    /// and (ab, c)): string-keyed formats such as tokenizer.json map such a string to its first id.
    /// </summary>
    public static List<int> DuplicateSpellings(BpeModel model)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var duplicates = new List<int>();
        string[] tokens = TokenStrings(model);
        for (int id = 0; id < tokens.Length; id++)
            if (!seen.Add(tokens[id])) duplicates.Add(id);
        return duplicates;
    }

    public static void WriteTokenizerJson(string path, BpeModel model)
    {
        string[] tokens = TokenStrings(model);
        int normal = model.TokenBytes.Count;
        using var stream = File.Create(path);
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        w.WriteStartObject();
        w.WriteString("version", "1.0");
        w.WriteNull("truncation");
        w.WriteNull("padding");
        w.WriteStartArray("added_tokens");
        for (int i = 0; i < model.Special.Count; i++)
        {
            w.WriteStartObject();
            w.WriteNumber("id", normal + i);
            w.WriteString("content", model.Special[i]);
            w.WriteBoolean("single_word", false);
            w.WriteBoolean("lstrip", false);
            w.WriteBoolean("rstrip", false);
            w.WriteBoolean("normalized", false);
            w.WriteBoolean("special", true);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteNull("normalizer");
        w.WritePropertyName("pre_tokenizer");
        if (model.Pattern == SplitPattern.Gpt2)
            ByteLevel(w, useRegex: true);
        else
        {
            // GPT-4's split as a Split step, then the byte mapping without GPT-2's own regex (as tiktoken-converted files do).
            w.WriteStartObject();
            w.WriteString("type", "Sequence");
            w.WriteStartArray("pretokenizers");
            w.WriteStartObject();
            w.WriteString("type", "Split");
            w.WriteStartObject("pattern");
            w.WriteString("Regex", BpeTrainer.Gpt4RegexPossessive);
            w.WriteEndObject();
            w.WriteString("behavior", "Isolated");
            w.WriteBoolean("invert", false);
            w.WriteEndObject();
            ByteLevel(w, useRegex: false);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WritePropertyName("post_processor");
        ByteLevel(w, useRegex: true);
        w.WritePropertyName("decoder");
        ByteLevel(w, useRegex: true);
        w.WriteStartObject("model");
        w.WriteString("type", "BPE");
        w.WriteNull("dropout");
        w.WriteNull("unk_token");
        w.WriteString("continuing_subword_prefix", "");
        w.WriteString("end_of_word_suffix", "");
        w.WriteBoolean("fuse_unk", false);
        w.WriteBoolean("byte_fallback", false);
        w.WriteBoolean("ignore_merges", false);
        w.WriteStartObject("vocab");
        var written = new HashSet<string>(StringComparer.Ordinal);
        for (int id = 0; id < normal; id++)
            if (written.Add(tokens[id])) w.WriteNumber(tokens[id], id);
        w.WriteEndObject();
        // "left right" strings, which every tokenizers version reads (byte-level spellings never hold a space).
        w.WriteStartArray("merges");
        foreach (var (left, right) in model.Merges) w.WriteStringValue(tokens[left] + " " + tokens[right]);
        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void ByteLevel(Utf8JsonWriter w, bool useRegex)
    {
        w.WriteStartObject();
        w.WriteString("type", "ByteLevel");
        w.WriteBoolean("add_prefix_space", false);
        w.WriteBoolean("trim_offsets", true);
        w.WriteBoolean("use_regex", useRegex);
        w.WriteEndObject();
    }

    /// <summary>The <c>tokenizer.ggml.*</c> keys of a gpt2-style vocabulary (model gpt2; pre gpt-2, or llama-bpe for the GPT-4 split, llama.cpp's name for that regex family).</summary>
    public static List<(string Key, GgufValue Value)> GgufMetadata(BpeModel model)
    {
        string[] tokens = TokenStrings(model);
        int normal = model.TokenBytes.Count;
        int[] types = [.. Enumerable.Range(0, tokens.Length).Select(id => id < normal ? (int)TokenType.Normal : (int)TokenType.Control)];
        string[] merges = [.. model.Merges.Select(m => tokens[m.Left] + " " + tokens[m.Right])];
        var keys = new List<(string, GgufValue)>
        {
            ("tokenizer.ggml.model", GgufValue.Of("gpt2")),
            ("tokenizer.ggml.pre", GgufValue.Of(model.Pattern == SplitPattern.Gpt2 ? "gpt-2" : "llama-bpe")),
            ("tokenizer.ggml.tokens", GgufValue.Of(tokens)),
            ("tokenizer.ggml.token_type", GgufValue.Of(types)),
            ("tokenizer.ggml.merges", GgufValue.Of(merges)),
        };
        if (model.Special.Count > 0)
        {
            // The first special token ends a document (GPT-2's <|endoftext|> convention).
            keys.Add(("tokenizer.ggml.eos_token_id", GgufValue.Of((uint)normal)));
            keys.Add(("tokenizer.ggml.bos_token_id", GgufValue.Of((uint)normal)));
        }
        return keys;
    }

    /// <summary>A vocabulary-only GGUF (no tensors), as llama.cpp's ggml-vocab-*.gguf files.</summary>
    public static void WriteGguf(string path, BpeModel model, string name)
    {
        var writer = new GgufWriter().Add("general.architecture", GgufValue.Of("gpt2")).Add("general.name", GgufValue.Of(name));
        foreach (var (key, value) in GgufMetadata(model)) writer.Add(key, value);
        writer.Write(path);
    }
}
