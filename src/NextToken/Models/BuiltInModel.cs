using System.Reflection;
using NextToken.Gguf;
using NextToken.Tensors;

namespace NextToken.Models;

/// <summary>
/// The model carried inside the library, so that every command has a real trained model on a
/// machine with no weights and no network: Andrej Karpathy's stories260K (llama2.c, MIT licence,
/// notice in <c>src/NextToken/BuiltIn/stories260K.LICENSE</c>), a 260K-parameter Llama trained on
/// TinyStories with its own 512-token SentencePiece vocabulary. It writes small children's stories.
/// </summary>
public static class BuiltInModel
{
    /// <summary>What <c>--model</c> accepts for it, and what a loaded model reports as its path.</summary>
    public const string Id = "builtin:stories260K";

    public const string Name = "stories260K";

    public const string Description = "stories260K (built in: a 260K-parameter Llama trained on TinyStories)";

    private const string ResourceName = "NextToken.BuiltIn.stories260K.gguf";

    // The resource is 1.2 MB; anything far larger means a broken build, not a model to load.
    private const long MaximumBytes = 16 << 20;

    /// <summary>True for <see cref="Id"/> and its short forms <c>builtin</c> and <c>builtin:</c>.</summary>
    public static bool Names(string model) =>
        model is "builtin" or "builtin:" || string.Equals(model, Id, StringComparison.OrdinalIgnoreCase);

    /// <summary>The built-in GGUF file, read from the assembly into aligned memory.</summary>
    public static GgufFile Open()
    {
        Stream stream = typeof(BuiltInModel).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new NextTokenException($"{Id}: the resource {ResourceName} is missing from {typeof(BuiltInModel).Assembly.GetName().Name} (a broken build)");
        using (stream)
            return GgufFile.Open(MappedFile.FromStream(Id, stream, MaximumBytes));
    }

    /// <summary>The licence notice shipped with the weights.</summary>
    public static string Licence()
    {
        using Stream stream = typeof(BuiltInModel).Assembly.GetManifestResourceStream("NextToken.BuiltIn.stories260K.LICENSE")!;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
