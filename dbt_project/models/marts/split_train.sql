-- The train part of interaction_splits.

{{ select_split('train') }}
