using NextToken.Gguf;
using NextToken.Tokenization;

namespace NextToken.Models;

/// <summary>Opens a weight file and builds the model its architecture names.</summary>
public static class ModelLoader
{
    public static readonly string[] SupportedArchitectures = ["gpt2", "llama"];

    public static LanguageModel Load(string path)
    {
        GgufFile file = GgufFile.Open(path);
        try
        {
            string architecture = file.GetString("general.architecture");
            Tokenizer tokenizer = Tokenizer.Load(file);
            return architecture switch
            {
                "gpt2" => new Gpt2Model(file, Gpt2Config.FromGguf(file, tokenizer.VocabSize), tokenizer, file.GetStringOrNull("tokenizer.chat_template")),
                "llama" => new LlamaModel(file, LlamaConfig.FromGguf(file, tokenizer.VocabSize), tokenizer, file.GetStringOrNull("tokenizer.chat_template")),
                _ => throw new GgufFormatException(path, null, $"unknown architecture '{architecture}' in 'general.architecture'; supported: {string.Join(", ", SupportedArchitectures)}"),
            };
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }
}
