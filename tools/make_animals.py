"""Write data/animals.tsv: a small bilingual (Chinese/English) sentence-classification set.

Hand-written sentence pairs about four animals; each Chinese sentence has an English twin with the
same ``pair`` id. Some sentences name the animal ("这是一只猫"), others only describe it ("它在天上飞"),
so a classifier has to use meaning, not just one keyword. Re-run to regenerate the file:

    python tools/make_animals.py
"""

from pathlib import Path

PAIRS = {
    "cat": [
        ("这是一只猫", "this is a cat"),
        ("我家的猫在沙发上睡觉", "my cat is sleeping on the sofa"),
        ("那只小猫很可爱", "that kitten is very cute"),
        ("猫喜欢抓老鼠", "cats like to catch mice"),
        ("它在喵喵叫", "it is meowing"),
        ("这只猫的胡须很长", "this cat has long whiskers"),
        ("小猫在玩毛线球", "the kitten is playing with a ball of yarn"),
        ("它舔了舔爪子，又打了个呼噜", "it licked its paw and purred"),
        ("邻居养了一只黑猫", "the neighbour keeps a black cat"),
        ("猫跳上了窗台晒太阳", "the cat jumped onto the windowsill to sunbathe"),
    ],
    "dog": [
        ("这是一只狗", "this is a dog"),
        ("我的狗每天早上都要出去散步", "my dog needs a walk every morning"),
        ("那只小狗在摇尾巴", "that puppy is wagging its tail"),
        ("狗是人类忠实的朋友", "dogs are loyal friends of people"),
        ("它对着门外汪汪叫", "it is barking at the door"),
        ("这只狗会捡球", "this dog can fetch a ball"),
        ("小狗啃坏了我的鞋", "the puppy chewed up my shoe"),
        ("它闻了闻骨头，高兴地跑开了", "it sniffed the bone and ran off happily"),
        ("警察带着一只警犬", "the police officer has a police dog"),
        ("狗在院子里看家", "the dog guards the house in the yard"),
    ],
    "bird": [
        ("这是一只鸟", "this is a bird"),
        ("小鸟在树上唱歌", "a little bird is singing in the tree"),
        ("那只鸟飞得很高", "that bird flies very high"),
        ("鸟在屋檐下筑巢", "the bird is building a nest under the eaves"),
        ("它张开翅膀在天上飞", "it spreads its wings and flies in the sky"),
        ("这只鹦鹉会说话", "this parrot can talk"),
        ("清晨的鸟叫声很好听", "the birdsong in the morning is lovely"),
        ("它用嘴啄开了种子", "it cracked the seed open with its beak"),
        ("一群大雁往南飞", "a flock of geese flies south"),
        ("鸟妈妈在喂小鸟", "the mother bird is feeding her chicks"),
    ],
    "fish": [
        ("这是一条鱼", "this is a fish"),
        ("鱼在水里游来游去", "the fish swims back and forth in the water"),
        ("那条金鱼是红色的", "that goldfish is red"),
        ("鱼用鳃呼吸", "fish breathe through their gills"),
        ("它在鱼缸里吐泡泡", "it is blowing bubbles in the tank"),
        ("这条鱼的鳞片闪闪发光", "the scales of this fish are shining"),
        ("爷爷在河边钓鱼", "grandpa is fishing by the river"),
        ("它摆动尾鳍游向深海", "it swings its tail fin and swims into the deep sea"),
        ("海里有很多热带鱼", "there are many tropical fish in the sea"),
        ("小鱼躲在水草中间", "the small fish hides among the water plants"),
    ],
}


def main() -> None:
    rows = ["pair\tlabel\tlang\ttext"]
    pair = 0
    for label, pairs in PAIRS.items():
        for zh, en in pairs:
            rows.append(f"{pair}\t{label}\tzh\t{zh}")
            rows.append(f"{pair}\t{label}\ten\t{en}")
            pair += 1
    out = Path(__file__).resolve().parents[1] / "data" / "animals.tsv"
    out.write_text("\n".join(rows) + "\n", encoding="utf-8")
    print(f"wrote {out} ({len(rows) - 1} sentences)")


if __name__ == "__main__":
    main()
