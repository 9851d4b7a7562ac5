// What a member's address says about it, without loading libp2p: the store's schema (members'
// table) and the CLI's status lines need this much, and libp2p takes half a second to load.

/** A relayed address or connection: '/…/p2p/<relay>/p2p-circuit/…'. */
export const isRelayed = (addr: string): boolean => addr.includes('/p2p-circuit');
