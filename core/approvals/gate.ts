import type { ToolResult } from '../plugin-api.ts';
import type { Approvals, ApprovalCall } from './approvals.ts';

/**
 * Run a tool call only once the owner approved it. The agent loop decides
 * *whether* a call needs approval (its tool policy); this is the waiting part.
 */
export async function runWithApproval(
  approvals: Approvals,
  call: ApprovalCall,
  run: () => Promise<ToolResult>,
  opts: { timeoutMs?: number } = {},
): Promise<ToolResult> {
  const decision = await approvals.request(call, opts);
  if (decision === 'approved') return run();
  return {
    content:
      decision === 'timeout'
        ? `the ${call.tool} call was not run: nobody approved it before the approval timed out`
        : `the ${call.tool} call was not run: the owner denied it`,
    isError: true,
    data: { approval: decision },
  };
}
