import tseslint from 'typescript-eslint'

export default tseslint.config(
  {ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.charge-ops/**', 'service/dist/**']},
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', {argsIgnorePattern: '^_', varsIgnorePattern: '^_'}],
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-empty-function': 'off',
      'no-console': 'error',
    },
  },
  // A function a reader can follow: longer ones are split into named steps (issue 12).
  {
    files: ['src/**/*.ts', 'commands/**/*.ts'],
    rules: {'max-lines-per-function': ['error', {max: 120, skipBlankLines: true, skipComments: true}]},
  },
  {files: ['test/**', 'bench/**', 'scripts/**', 'service/**', 'bin/**'], rules: {'no-console': 'off'}},
)
