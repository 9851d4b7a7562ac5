// npm run soak: the soak outside the suite, twenty minutes of random work unless
// SAFE_SOAK_SECONDS says otherwise (not a *.test.js file, so npm test leaves it out).
import { soakTest } from './soak.js';

soakTest(1200);
