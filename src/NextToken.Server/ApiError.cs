using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace NextToken.Server;

/// <summary>
/// A request the server refuses, answered in OpenAI's error shape
/// <c>{"error":{"message","type","param","code"}}</c> with every key present (null where nothing fits).
/// </summary>
public sealed class ApiError(int status, string message, string? param = null, string? code = null, string type = "invalid_request_error")
    : Exception(message)
{
    public int Status { get; } = status;
    public string Type { get; } = type;
    public string? Param { get; } = param;
    public string? Code { get; } = code;

    public static ApiError BadValue(string param, string message) => new(400, message, param, "invalid_value");

    public Task WriteAsync(HttpContext context) => Write(context, Status, Message, Type, Param, Code);

    public static async Task Write(HttpContext context, int status, string message, string type, string? param, string? code)
    {
        if (context.Response.HasStarted) return;
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(JsonSerializer.Serialize(new { error = new { message, type, param, code } }));
    }
}
