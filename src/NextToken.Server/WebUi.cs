using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.FileProviders;

namespace NextToken.Server;

/// <summary>
/// The web UI at <c>/</c>: the files the build put in <c>wwwroot</c> beside the assembly (web/, built
/// with Vite), or, when they are missing, a page saying how to build them. API paths are untouched.
/// </summary>
internal static class WebUi
{
    public static string DefaultRoot => Path.Combine(AppContext.BaseDirectory, "wwwroot");

    /// <summary>Before routing, so a file wins over the API's catch-all 404 and needs no API key (it holds no model data).</summary>
    public static void Use(WebApplication app, string root)
    {
        if (File.Exists(Path.Combine(root, "index.html")))
        {
            var files = new PhysicalFileProvider(Path.GetFullPath(root));
            app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = files });
            app.UseStaticFiles(new StaticFileOptions { FileProvider = files });
            return;
        }
        app.Use((context, next) =>
        {
            if (!HttpMethods.IsGet(context.Request.Method) || context.Request.Path.Value is not ("/" or "/index.html")) return next(context);
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            context.Response.ContentType = "text/html; charset=utf-8";
            return context.Response.WriteAsync(MissingPage(root));
        });
    }

    private static string MissingPage(string root) => $"""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>NextToken: web UI not built</title></head>
        <body style="font-family: system-ui, sans-serif; max-width: 40em; margin: 3em auto">
        <h1>The web UI is not built</h1>
        <p>This server found no <code>index.html</code> in <code>{WebUtility.HtmlEncode(root)}</code>.
        The build makes it when Node.js (20 or later, with npm) is on PATH: install Node.js, then run
        <code>dotnet build</code> again (it runs <code>npm ci &amp;&amp; npm run build</code> in <code>web/</code>),
        or run those two commands in <code>web/</code> yourself.</p>
        <p>The API works without it: <a href="/openapi/v1.json">/openapi/v1.json</a> lists every endpoint.</p>
        </body></html>
        """;
}
