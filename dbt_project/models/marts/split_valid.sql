-- The valid part of interaction_splits.

{{ select_split('valid') }}
