import type { MethodRegistry } from '../bus/types.ts';
import type { Approvals, ApprovalStatus } from './approvals.ts';

/** `approvals.list` / `approvals.resolve` (protocol.md: scope write). */
export function registerApprovalMethods(methods: MethodRegistry, approvals: Approvals): void {
  methods.register<{ status?: ApprovalStatus | 'all'; limit?: number }>('approvals.list', {
    scope: 'operator.write',
    params: {
      type: 'object',
      properties: {
        status: { enum: ['pending', 'approved', 'denied', 'timeout', 'all'] },
        limit: { type: 'integer', minimum: 1, maximum: 1000 },
      },
      additionalProperties: false,
    },
    handler: (p) => ({
      approvals: approvals.list({ status: p.status === 'all' ? undefined : (p.status ?? 'pending'), limit: p.limit }),
    }),
  });
  methods.register<{ id: string; decision: 'approved' | 'denied' }>('approvals.resolve', {
    scope: 'operator.write',
    params: {
      type: 'object',
      properties: {
        id: { type: 'string', minLength: 1, maxLength: 64 },
        decision: { enum: ['approved', 'denied'] },
        idempotencyKey: { type: 'string', minLength: 1, maxLength: 128 },
      },
      required: ['id', 'decision'],
      additionalProperties: false,
    },
    handler: (p, caller) => ({ approval: approvals.resolve(p.id, p.decision, `device:${caller.deviceId}`) }),
  });
}
