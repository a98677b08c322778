// Secret values the tests hand to the gateway. The secret-leak sweep
// (test/global.ts) fails the run if any of them shows up in anything the suite
// recorded: CLI and gateway output, log files, audit rows.
export const TEST_SECRETS = {
  anthropicKey: 'sk-ant-e2e-9f8e7d6c5b4a',
  telegramAnthropicKey: 'sk-ant-tg-e2e-1234',
  telegramToken: '123456:TEST-token-e2e-5f1c',
  openaiKey: 'sk-test-7f3a9c1e5b2d4f6a8c0e',
  // test/e2e/providers-multi.test.ts: a second OpenAI-wire account
  deepseekKey: 'sk-ds-e2e-2c8f4a6e0b1d',
  // test/e2e/{discord,slack,irc,email}.test.ts
  channelsAnthropicKey: 'sk-ant-chan-e2e-8d2b6f',
  discordToken: 'discord-e2e-token-4c7a19e2',
  slackAppToken: 'xapp-1-e2e-3b9d5e71',
  slackBotToken: 'xoxb-e2e-6a2f8c40',
  ircPassword: 'irc-e2e-pass-71d3c9',
  imapPassword: 'imap-e2e-pass-5e8a2b',
} as const;
