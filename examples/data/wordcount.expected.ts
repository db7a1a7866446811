/** What examples/wordcount.ts prints for data/wordcount.txt, sorted: checked wherever it runs. */
export const WORD_COUNTS = [
  "and: 2",
  "by: 1",
  "on: 1",
  "rains: 1",
  "river: 3",
  "runs: 3",
  "sea: 2",
  "sky: 2",
  "the: 7",
  "to: 2",
];
