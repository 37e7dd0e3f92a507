/** The 14 people of the reference CRM (../shared/SCENARIO.md), in its order. */
export const PEOPLE: readonly string[] = [
  'alice',
  'bob',
  'pat',
  'carol',
  'dave',
  'walt',
  'vera',
  'erin',
  'fiona',
  'mark',
  'tom',
  'olga',
  'adam',
  'audrey',
];
