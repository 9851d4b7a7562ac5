// The options of the bench and simulation scripts: a wrong one is one line on stderr naming
// the options there are, and exit 2, not a stack trace.
import { basename } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';

export function scriptArgs<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (err) {
    const usage = Object.entries(config.options ?? {}).map(([name, o]) => (o.type === 'boolean' ? `[--${name}]` : `[--${name} VALUE]`));
    process.stderr.write(`${basename(process.argv[1] ?? 'script')}: ${(err as Error).message.split('\n')[0]}; usage: ${usage.join(' ')}\n`);
    process.exit(2);
  }
}
