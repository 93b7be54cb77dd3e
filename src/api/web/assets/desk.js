// The web desk's one script: keyboard use of the review station. The pages work without it
// (plain forms); it adds keys. No inline scripts (the Content-Security-Policy forbids them).
"use strict";
