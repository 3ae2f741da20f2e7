/** Targets rmsfuse generates for (SPEC section 5). undefined = no target: every valid site fuses. */
export const ASCEND_TARGETS = ['ascend910a', 'ascend910b', 'ascend310p', 'ascend310b', 'ascend950'] as const;
export const TARGETS = ['webgpu', ...ASCEND_TARGETS] as const;
export type AscendTarget = (typeof ASCEND_TARGETS)[number];
export type Target = (typeof TARGETS)[number] | undefined;

export const isAscend = (t: Target): t is AscendTarget => t !== undefined && t.startsWith('ascend');
export const isTarget = (s: string): s is NonNullable<Target> => (TARGETS as readonly string[]).includes(s);
