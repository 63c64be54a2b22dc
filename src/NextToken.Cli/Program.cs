using System.CommandLine;
using NextToken.Cli;
using NextToken.Cli.Commands;

var root = new RootCommand("NextToken: run transformer language models from real weight files and see what happens at every step.")
{
    InfoCommand.Create(),
    TokenizeCommand.Create(),
    NextCommand.Create(),
    GenerateCommand.Create(),
    ChatCommand.Create(),
    TemplateCommand.Create(),
    CompareCommand.Create(),
    LensCommand.Create(),
    AttentionCommand.Create(),
    DriftCommand.Create(),
    SteerCommand.Create(),
    RoutingCommand.Create(),
    MapCommand.Create(),
    HubCommands.Pull(),
    HubCommands.Models(),
    PerplexityCommand.Create(),
    ServeCommand.Create(),
    ServeBenchCommand.Create(),
    BenchCommand.Create(),
    SynthCommand.Create(),
    TrainTokenizerCommand.Create(),
    PretrainCommand.Create(),
    SftCommand.Create(),
    PreferenceCommands.Reward(),
    PreferenceCommands.Dpo(),
    PreferCommand.Create(),
};
root.Options.Add(CommonOptions.Verbose);
root.Options.Add(CommonOptions.Vocab);
root.Options.Add(CommonOptions.QuantizeActivations);
return root.Parse(args).Invoke();
