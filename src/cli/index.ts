/** The `warren` command-line tool: argument parsing, commands, and output formatting. */
export { main } from './warren.js';
