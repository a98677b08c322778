// The config most agent tests start from: anthropic primary, openai fallback, both at fakes.
export function agentConfig(anthropicUrl: string, openaiUrl = 'http://127.0.0.1:9', defaults: Record<string, unknown> = {}, rest: Record<string, unknown> = {}) {
  return {
    providers: {
      anthropic: { apiKey: { secret: 'ANTHROPIC_API_KEY' }, baseUrl: anthropicUrl, timeoutMs: 400 },
      openai: { apiKey: { secret: 'OPENAI_API_KEY' }, baseUrl: openaiUrl + '/v1', timeoutMs: 400 },
    },
    agents: {
      defaults: { model: { primary: 'anthropic/claude-sonnet-4-6', fallbacks: ['openai/gpt-4.1-mini'] }, tools: { allow: ['*'], deny: [], requireApproval: [] }, ...defaults },
      list: [{ id: 'main' }],
    },
    ...rest,
  };
}
