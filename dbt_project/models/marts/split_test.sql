-- The test part of interaction_splits.

{{ select_split('test') }}
