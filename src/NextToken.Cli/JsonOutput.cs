using System.Text.Encodings.Web;
using System.Text.Json;

namespace NextToken.Cli;

internal static class JsonOutput
{
    public static readonly JsonSerializerOptions Options = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static void Write(object document) => Console.WriteLine(JsonSerializer.Serialize(document, Options));
}
