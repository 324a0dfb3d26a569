;; Host function types for tests/unit/agent/runtime/test_cvalues.py: an imported instance using every kind of value.
(component
  (import "host" (instance
    (type $rec (record (field "n" u32) (field "the-name" string) (field "tags" (list string))))
    (export "rec" (type $rec' (eq $rec)))
    (type $var (variant (case "nothing") (case "text" string) (case "num" s64) (case "pair" (tuple u8 (option $rec')))))
    (export "var" (type $var' (eq $var)))
    (type $en (enum "first" "second-one"))
    (export "en" (type $en' (eq $en)))
    (type $fl (flags "read" "write"))
    (export "fl" (type $fl' (eq $fl)))
    (export "scalars" (func (param "a" bool) (param "b" s8) (param "c" u16) (param "d" s32) (param "e" u64) (param "f" f32) (param "g" f64) (param "h" char) (result (tuple bool s8 u16 s32 u64 f32 f64 char))))
    (export "texts" (func (param "s" string) (param "b" (list u8)) (result (result (option (list u8)) (error string)))))
    (export "shapes" (func (param "r" $rec') (param "v" $var') (param "e" $en') (param "f" $fl') (result (list $var'))))
    (export "nested" (func (param "x" (option (option string))) (result (result (list (tuple string (option (list u8))))))))
  ))
)
