// The soak in the suite: a minute of random work on three hosts (npm run soak runs twenty).
import { soakTest } from './soak.js';

soakTest(60);
